-- Daily activity: per learner, course and day, their events (active learners per day or week count these rows).
-- time: day
-- columns: course_id String, org String, day Date, user_id Int64, events UInt64
SELECT course_id, org, toDate(time) AS day, assumeNotNull(user_id) AS user_id, count() AS events
FROM events
WHERE user_id IS NOT NULL AND user_id > 0 AND course_id != '' {{ scope() }} {{ period('time') }}
GROUP BY course_id, org, day, user_id
