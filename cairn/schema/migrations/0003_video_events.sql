-- openedx.video_events: video player interactions (browser and mobile).
{% import 'macros.jinja' as m %}

CREATE TABLE IF NOT EXISTS `{{ database }}`.video_events {{ on_cluster }}
(
    event_id UUID COMMENT 'id of the event in openedx.events',
    time DateTime64(6, 'UTC') COMMENT 'event time (UTC)',
    name LowCardinality(String) COMMENT 'event name (play_video, edx.video.closed_captions.shown, ...)',
    event_type LowCardinality(String) COMMENT 'legacy type: load_video, play_video, pause_video, stop_video, seek_video, speed_change_video, complete_video, show_transcript, hide_transcript, ...',
    course_id LowCardinality(String) COMMENT 'course key',
    org LowCardinality(String) COMMENT 'organisation',
    user_id Nullable(Int64) COMMENT 'learner id',
    username String COMMENT 'learner username',
    session String COMMENT 'tracking session',
    video_id String COMMENT 'block id of the video (the block@ part of its usage key; i4x name for old courses)',
    code LowCardinality(String) COMMENT 'YouTube id, html5 or mobile',
    position Nullable(Float64) COMMENT 'player position in seconds (currentTime / current_time)',
    duration Nullable(Float64) COMMENT 'video duration in seconds, when logged',
    old_time Nullable(Float64) COMMENT 'seek: position before',
    new_time Nullable(Float64) COMMENT 'seek: position after',
    seek_type LowCardinality(String) COMMENT 'seek: onSlideSeek, onSkipSeek, ...',
    old_speed Nullable(Float64) COMMENT 'speed change: speed before',
    new_speed Nullable(Float64) COMMENT 'speed change: speed after'
)
ENGINE = {{ table_engine('MergeTree') }}
PARTITION BY toYYYYMM(time)
ORDER BY (org, course_id, video_id, time)
SETTINGS {{ m.dedup_settings() }}
COMMENT 'Video events, one row per event';

CREATE MATERIALIZED VIEW IF NOT EXISTS `{{ database }}`._video_events_mv {{ on_cluster }}
TO `{{ database }}`.video_events
AS
SELECT
    event_id, time, name, event_type, course_id, org, user_id, username, session,
    {{ m.block_id_of("coalesce(JSONExtract(payload, 'id', 'Nullable(String)'), JSONExtract(payload, 'module_id', 'Nullable(String)'), '')") }} AS video_id,
    JSONExtractString(payload, 'code') AS code,
    coalesce(JSONExtract(payload, 'currentTime', 'Nullable(Float64)'), JSONExtract(payload, 'current_time', 'Nullable(Float64)')) AS position,
    JSONExtract(payload, 'duration', 'Nullable(Float64)') AS duration,
    JSONExtract(payload, 'old_time', 'Nullable(Float64)') AS old_time,
    JSONExtract(payload, 'new_time', 'Nullable(Float64)') AS new_time,
    coalesce(JSONExtract(payload, 'type', 'Nullable(String)'), JSONExtract(payload, 'seek_type', 'Nullable(String)'), '') AS seek_type,
    JSONExtract(payload, 'old_speed', 'Nullable(Float64)') AS old_speed,
    JSONExtract(payload, 'new_speed', 'Nullable(Float64)') AS new_speed
FROM `{{ database }}`._event_rows
WHERE event_type IN ('load_video', 'play_video', 'pause_video', 'stop_video', 'seek_video', 'speed_change_video',
                     'complete_video', 'show_transcript', 'hide_transcript', 'video_show_cc_menu', 'video_hide_cc_menu')
   OR startsWith(name, 'edx.video.');
