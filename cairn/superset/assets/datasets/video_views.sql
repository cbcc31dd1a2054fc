-- Video views: per learner, video and day, the seconds of video watched (play-to-pause/seek/stop segments
-- computed with a window function over each viewing session; speed changes do not end a segment), plays, and whether they reached the end.
-- time: day
-- columns: course_id String, org String, day Date, video String, video_order UInt32, user_id Int64, plays UInt64, watched_seconds Float64, completed UInt8
SELECT
    s.course_id AS course_id,
    any(b.org) AS org,
    s.day AS day,
    {{ block_label('b') }} AS video,
    any(b.course_order) AS video_order,
    s.user_id AS user_id,
    sum(s.plays) AS plays,
    ifNull(sum(s.seconds), 0) AS watched_seconds,
    max(s.completed) AS completed
FROM (
    SELECT
        course_id, video_id, user_id, toDate(time) AS day,
        countIf(event_type = 'play_video') AS plays,
        sumIf(greatest(least(end_at, duration_s) - start_at, 0), start_at IS NOT NULL AND end_at IS NOT NULL) AS seconds,
        max(event_type = 'complete_video') AS completed
    FROM (
        SELECT
            course_id, video_id, assumeNotNull(user_id) AS user_id, time, event_type,
            ifNull(duration, 1e9) AS duration_s,
            -- where playing stopped at this event
            multiIf(event_type IN ('pause_video', 'stop_video'), position,
                    event_type = 'seek_video', old_time,
                    event_type = 'complete_video', ifNull(position, duration),
                    NULL) AS end_at,
            -- where playing had resumed at the previous event of the same viewing
            lagInFrame(multiIf(event_type = 'play_video', position,
                               event_type = 'seek_video', new_time, NULL))
                OVER (PARTITION BY user_id, video_id, session ORDER BY time
                      ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) AS start_at
        FROM video_events
        WHERE user_id IS NOT NULL AND video_id != ''
          AND event_type IN ('play_video', 'pause_video', 'seek_video', 'stop_video', 'complete_video')
          {{ scope() }} {{ period('time') }}
    )
    GROUP BY course_id, video_id, user_id, day
) AS s
INNER JOIN (
    SELECT course_id, org, block_id, course_order, section_index, subsection_index, unit_index, display_name
    FROM course_blocks
    WHERE block_type = 'video' {{ scope() }}
) AS b ON b.course_id = s.course_id AND b.block_id = s.video_id
GROUP BY course_id, day, video, user_id
