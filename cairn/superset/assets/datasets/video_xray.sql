-- Video x-ray: for one video (the Video filter, else the most watched one), per second of the video, how many
-- learners watched it (unique viewers) and how many more times it was watched (repeat views). Built from
-- watched segments without a row per watched second: each learner's segments, widened to whole seconds, are
-- merged where they overlap (arrayFold), every segment adds +1 at its first second and -1 after its last, and
-- running sums give the counts per second.
-- columns: video String, second UInt32, unique_viewers Int64, repeat_views Int64
WITH chosen AS (
    SELECT course_id, block_id, {{ block_label('b') }} AS label
    FROM course_blocks AS b
    WHERE block_type = 'video' {{ scope() }} {{ chosen('video', block_label('b')) }}
)
SELECT
    c.label AS video,
    toUInt32(tupleElement(counts, 1)) AS second,
    tupleElement(counts, 2) AS unique_viewers,
    tupleElement(counts, 3) - tupleElement(counts, 2) AS repeat_views
FROM (
    -- per video: the changes per second, turned into counts for every second 0 .. duration
    SELECT course_id, video_id, max(second) AS seconds,
           mapFromArrays(groupArray(second), groupArray(viewers)) AS viewer_steps,
           mapFromArrays(groupArray(second), groupArray(views)) AS view_steps
    FROM (
        SELECT course_id, video_id, step.1 AS second, sum(step.2) AS views, sum(step.3) AS viewers
        FROM (
            SELECT course_id, video_id,
                   arrayJoin(arrayConcat(
                       arrayMap(s -> (toUInt32(floor(s.1)), 1, 0), segments),
                       arrayMap(s -> (toUInt32(ceil(s.2)), -1, 0), segments),
                       arrayMap(s -> (toUInt32(floor(s.1)), 0, 1), runs),
                       arrayMap(s -> (toUInt32(ceil(s.2)), 0, -1), runs),
                       [(toUInt32(ceil(video_duration)), 0, 0)])) AS step
            FROM (
                SELECT course_id, video_id, user_id, segments, video_duration,
                       -- overlapping segments of one learner become one run (in whole seconds: 1.2-3.4 and
                       -- 3.6-5.0 both cover second 3, where the learner is one viewer)
                       arrayFold((acc, s) -> if(empty(acc) OR s.1 > acc[-1].2, arrayPushBack(acc, s),
                                                arrayPushBack(arrayPopBack(acc), (acc[-1].1, greatest(acc[-1].2, s.2)))),
                                 segments, CAST([], 'Array(Tuple(Float64, Float64))')) AS runs
                FROM (
                    SELECT course_id, video_id, user_id, arraySort(groupArray((floor(assumeNotNull(start_at)), ceil(assumeNotNull(least(end_at, duration)))))) AS segments,
                           max(duration) AS video_duration
                    FROM (
                        SELECT course_id, video_id, assumeNotNull(user_id) AS user_id, ifNull(duration, 0) AS duration,
                               multiIf(event_type IN ('pause_video', 'stop_video'), position,
                                       event_type = 'seek_video', old_time,
                                       event_type = 'complete_video', ifNull(position, duration),
                                       NULL) AS end_at,
                               lagInFrame(multiIf(event_type = 'play_video', position, event_type = 'seek_video', new_time, NULL))
                                   OVER (PARTITION BY user_id, video_id, session ORDER BY time
                                         ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) AS start_at
                        FROM video_events
                        WHERE user_id IS NOT NULL
                          AND event_type IN ('play_video', 'pause_video', 'seek_video', 'stop_video', 'complete_video')
                          AND (course_id, video_id) IN (
                              SELECT course_id, video_id FROM video_events
                              WHERE event_type = 'play_video' AND (course_id, video_id) IN (SELECT course_id, block_id FROM chosen)
                                {{ scope() }}
                              GROUP BY course_id, video_id
                              ORDER BY uniqExact(user_id) DESC, course_id, video_id
                              LIMIT {{ 100 if filter_values('video') else 1 }})
                          {{ scope() }} {{ period('time') }}
                    )
                    WHERE start_at IS NOT NULL AND end_at IS NOT NULL AND least(end_at, duration) > start_at
                    GROUP BY course_id, video_id, user_id
                )
            )
        )
        GROUP BY course_id, video_id, second
    )
    GROUP BY course_id, video_id
) AS v
ARRAY JOIN arrayZip(range(v.seconds),
                    arrayCumSum(arrayMap(k -> v.viewer_steps[k], range(v.seconds))),
                    arrayCumSum(arrayMap(k -> v.view_steps[k], range(v.seconds)))) AS counts
INNER JOIN chosen AS c ON c.course_id = v.course_id AND c.block_id = v.video_id
ORDER BY video, second
