-- Recent activity: per learner and course, what they did in the last 7 days (active, watched a video, tried a problem).
-- columns: course_id String, org String, user_id Int64, last_event DateTime, events UInt64, watched_video UInt8, tried_problem UInt8
SELECT
    course_id,
    org,
    assumeNotNull(user_id) AS user_id,
    max(time) AS last_event,
    count() AS events,
    -- the event name as stored: play_video, without quotes around it
    max(name = 'play_video') AS watched_video,
    max(name = 'problem_check' AND event_source = 'server') AS tried_problem
FROM events
WHERE time >= now() - INTERVAL 7 DAY AND user_id IS NOT NULL AND user_id > 0 AND course_id != '' {{ scope() }}
GROUP BY course_id, org, user_id
