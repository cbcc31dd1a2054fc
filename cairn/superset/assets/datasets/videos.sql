-- Videos: one row per video of the imported courses, in course order (lists the Video filter).
-- columns: course_id String, org String, video String, video_order UInt32
SELECT course_id, org, {{ block_label('b') }} AS video, course_order AS video_order
FROM course_blocks AS b
WHERE block_type = 'video' {{ scope() }}
ORDER BY course_id, video_order
