-- Time spent per learner: per learner and course, the length of their sessions. A session is a run of
-- events less than 30 minutes apart; the gaps inside sessions are added up (one sorted array per learner,
-- no exploded rows).
-- columns: course_id String, org String, user_id Int64, sessions UInt64, seconds Float64
SELECT
    course_id,
    org,
    user_id,
    1 + arrayCount(gap -> gap > 1800000, gaps) AS sessions,
    arraySum(arrayFilter(gap -> gap <= 1800000, gaps)) / 1000 AS seconds
FROM (
    SELECT
        course_id,
        org,
        assumeNotNull(user_id) AS user_id,
        arrayDifference(arraySort(groupArray(toUnixTimestamp64Milli(time)))) AS gaps
    FROM events
    WHERE user_id IS NOT NULL AND user_id > 0 AND course_id != '' {{ scope() }} {{ period('time') }}
    GROUP BY course_id, org, user_id
)
