-- Learners at risk: enrolled learners who do not pass and who are inactive for 7+ days, or behind the median
-- progress of their course, or failing most of their problem submissions; with the signals that flagged each.
-- Names and emails come through the datalake's rights: cairn serve masks them for users without access.
-- time: last_visit
-- columns: course_id String, org String, user_id Int64, username String, full_name String, email String, mode String, enrolled_at DateTime, last_visit DateTime, days_inactive Int64, grade_percent Float64, progress_percent Float64, median_progress_percent Float64, problem_success_percent Float64, passed UInt8, inactive UInt8, behind UInt8, failing UInt8, reasons String
{%- set inactive_days = 7 %}
SELECT *,
       arrayStringConcat(arrayFilter(reason -> reason != '', [
           if(inactive, 'inactive {{ inactive_days }}+ days', ''),
           if(behind, 'behind median progress', ''),
           if(failing, 'failing problems', '')]), ', ') AS reasons
FROM (
    SELECT *,
           days_inactive >= {{ inactive_days }} AS inactive,
           progress_percent < median_progress_percent AS behind,
           problem_success_percent < 50 AS failing
    FROM (
        SELECT
            e.course_id AS course_id, e.org AS org, toInt64(e.user_id) AS user_id, e.username AS username,
            e.full_name AS full_name, e.email AS email, e.mode AS mode, e.enrolled_at AS enrolled_at,
            a.last_visit AS last_visit,
            dateDiff('day', ifNull(a.last_visit, ifNull(e.enrolled_at, now())), now()) AS days_inactive,
            round(ifNull(g.percent_grade, 0) * 100, 1) AS grade_percent,
            round(100 * ifNull(c.done, 0) / greatest(ifNull(t.total, 0), 1), 1) AS progress_percent,
            quantileExact(0.5)(progress_percent) OVER (PARTITION BY e.course_id) AS median_progress_percent,
            if(p.attempts > 0, round(100 * p.correct / p.attempts, 1), 100) AS problem_success_percent,
            ifNull(g.passed, 0) AS passed
        FROM enrollments_with_profile AS e
        LEFT JOIN (
            SELECT course_id, assumeNotNull(user_id) AS user_id, max(time) AS last_visit
            FROM events
            WHERE user_id IS NOT NULL AND course_id != '' {{ scope() }}
            GROUP BY course_id, user_id
        ) AS a ON a.course_id = e.course_id AND a.user_id = toInt64(e.user_id)
        LEFT JOIN (
            SELECT course_id, user_id, percent_grade, passed_timestamp IS NOT NULL AS passed
            FROM course_grades WHERE 1 {{ scope('course_id', org_of('course_id')) }}
        ) AS g ON g.course_id = e.course_id AND g.user_id = e.user_id
        LEFT JOIN (
            SELECT course_key AS course_id, user_id, count() AS done
            FROM block_completion
            WHERE completion >= 1 {{ scope('course_key', org_of('course_key')) }}
            GROUP BY course_id, user_id
        ) AS c ON c.course_id = e.course_id AND c.user_id = e.user_id
        LEFT JOIN (
            SELECT course_id, count() AS total FROM course_blocks
            WHERE depth > 3 AND block_type IN ('html', 'video', 'problem') {{ scope() }}
            GROUP BY course_id
        ) AS t ON t.course_id = e.course_id
        LEFT JOIN (
            SELECT course_id, assumeNotNull(user_id) AS user_id, count() AS attempts, countIf(success = 'correct') AS correct
            FROM problem_events
            WHERE name = 'problem_check' AND event_source = 'server' AND user_id IS NOT NULL {{ scope() }}
            GROUP BY course_id, user_id
        ) AS p ON p.course_id = e.course_id AND p.user_id = toInt64(e.user_id)
        WHERE e.is_active {{ scope('e.course_id', 'e.org') }}
    )
    WHERE NOT passed
)
WHERE inactive OR behind OR failing
