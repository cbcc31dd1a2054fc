-- Unit views: per learner, unit and day, how often the unit was opened (sequence navigation events point at
-- a unit by its position in its subsection).
-- time: day
-- columns: course_id String, org String, day Date, unit String, unit_order UInt32, user_id Int64, views UInt64
SELECT
    n.course_id AS course_id,
    any(u.org) AS org,
    n.day AS day,
    {{ block_label('u') }} AS unit,
    any(u.course_order) AS unit_order,
    n.user_id AS user_id,
    count() AS views
FROM (
    SELECT course_id, toDate(time) AS day, assumeNotNull(user_id) AS user_id, sequence_id,
           toUInt32(ifNull(target_tab, if(event_type = 'seq_prev' OR endsWith(name, 'previous_selected'),
                                          ifNull(current_tab, 2) - 1, ifNull(current_tab, 0) + 1))) AS tab
    FROM navigation_events
    WHERE sequence_id != '' AND user_id IS NOT NULL {{ scope() }} {{ period('time') }}
) AS n
INNER JOIN (
    SELECT course_id, org, parent, position, course_order, section_index, subsection_index, unit_index, display_name
    FROM course_blocks
    WHERE block_type = 'vertical' {{ scope() }}
) AS u ON u.course_id = n.course_id AND u.parent = n.sequence_id AND u.position = n.tab
GROUP BY course_id, day, unit, user_id
