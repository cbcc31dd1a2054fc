-- Events per minute: events stored per minute and course over the last 6 hours (or the dashboard's date range).
-- time: minute
-- columns: course_id String, org String, minute DateTime, events UInt64
SELECT course_id, org, toStartOfMinute(time) AS minute, count() AS events
FROM events
WHERE 1 {{ scope() }}
{%- if from_dttm or to_dttm %} {{ period('time') }}{% else %} AND time >= now() - INTERVAL 6 HOUR{% endif %}
GROUP BY course_id, org, minute
