-- Learner summary: per learner and course, grade, progress, activity and time spent, next to the course's
-- averages (computed over all the course's learners before the Learner filter picks one).
-- columns: course_id String, org String, username String, full_name String, email String, mode String, enrolled_at DateTime, last_visit DateTime, active_days UInt32, grade_percent Float64, course_grade_percent Float64, progress_percent Float64, course_progress_percent Float64, hours Float64, course_hours Float64
SELECT *
FROM (
    SELECT
        e.course_id AS course_id, e.org AS org, e.username AS username, e.full_name AS full_name, e.email AS email,
        e.mode AS mode, e.enrolled_at AS enrolled_at, a.last_visit AS last_visit, ifNull(a.active_days, 0) AS active_days,
        round(ifNull(g.percent_grade, 0) * 100, 1) AS grade_percent,
        round(avg(grade_percent) OVER (PARTITION BY e.course_id), 1) AS course_grade_percent,
        round(100 * ifNull(c.done, 0) / greatest(ifNull(t.total, 0), 1), 1) AS progress_percent,
        round(avg(progress_percent) OVER (PARTITION BY e.course_id), 1) AS course_progress_percent,
        round(ifNull(a.seconds, 0) / 3600, 2) AS hours,
        round(avg(hours) OVER (PARTITION BY e.course_id), 2) AS course_hours
    FROM enrollments_with_profile AS e
    LEFT JOIN (
        SELECT course_id, user_id, last_visit,
               arrayUniq(arrayMap(t -> intDiv(t, 86400000), times)) AS active_days,
               arraySum(arrayFilter(gap -> gap <= 1800000, arrayDifference(times))) / 1000 AS seconds
        FROM (
            SELECT course_id, assumeNotNull(user_id) AS user_id, max(time) AS last_visit,
                   arraySort(groupArray(toUnixTimestamp64Milli(time))) AS times
            FROM events
            WHERE user_id IS NOT NULL AND course_id != '' {{ scope() }}
            GROUP BY course_id, user_id
        )
    ) AS a ON a.course_id = e.course_id AND a.user_id = toInt64(e.user_id)
    LEFT JOIN (
        SELECT course_id, user_id, percent_grade FROM course_grades
        WHERE 1 {{ scope('course_id', org_of('course_id')) }}
    ) AS g ON g.course_id = e.course_id AND g.user_id = e.user_id
    LEFT JOIN (
        SELECT course_key AS course_id, user_id, count() AS done FROM block_completion
        WHERE completion >= 1 {{ scope('course_key', org_of('course_key')) }}
        GROUP BY course_id, user_id
    ) AS c ON c.course_id = e.course_id AND c.user_id = e.user_id
    LEFT JOIN (
        SELECT course_id, count() AS total FROM course_blocks
        WHERE depth > 3 AND block_type IN ('html', 'video', 'problem') {{ scope() }}
        GROUP BY course_id
    ) AS t ON t.course_id = e.course_id
    WHERE e.username != '' {{ scope('e.course_id', 'e.org') }}
)
WHERE 1 {{ learner('username') }}
