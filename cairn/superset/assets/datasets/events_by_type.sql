-- Events by type: events per hour, course and kind (video, problem, navigation, page view, forum, ...).
-- time: hour
-- columns: course_id String, org String, hour DateTime, kind String, events UInt64
SELECT
    course_id,
    org,
    toStartOfHour(time) AS hour,
    multiIf(name IN ('play_video', 'pause_video', 'seek_video', 'stop_video', 'load_video', 'speed_change_video',
                     'complete_video', 'show_transcript', 'hide_transcript') OR startsWith(name, 'edx.video.'), 'Video',
            startsWith(name, 'problem_') OR startsWith(name, 'edx.grades.problem.') OR name = 'showanswer', 'Problem',
            startsWith(name, 'edx.ui.lms.') OR name IN ('seq_goto', 'seq_next', 'seq_prev'), 'Navigation',
            startsWith(name, 'edx.forum.'), 'Forum',
            startsWith(name, 'edx.course.enrollment.'), 'Enrollment',
            startsWith(name, 'edx.grades.') OR startsWith(name, 'edx.course.grade.'), 'Grading',
            startsWith(name, 'edx.completion.'), 'Completion',
            startsWith(name, '/'), 'Page request',
            'Other') AS kind,
    count() AS events
FROM events
WHERE course_id != '' {{ scope() }} {{ period('time') }}
GROUP BY course_id, org, hour, kind
