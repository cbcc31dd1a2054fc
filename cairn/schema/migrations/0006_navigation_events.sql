-- openedx.navigation_events: moves between units, sequences, outline and links.
{% import 'macros.jinja' as m %}

CREATE TABLE IF NOT EXISTS `{{ database }}`.navigation_events {{ on_cluster }}
(
    event_id UUID COMMENT 'id of the event in openedx.events',
    time DateTime64(6, 'UTC') COMMENT 'event time (UTC)',
    name LowCardinality(String) COMMENT 'edx.ui.lms.sequence.tab_selected, .next_selected, .previous_selected, edx.ui.lms.outline.selected, edx.ui.lms.link_clicked, seq_goto, ...',
    event_type LowCardinality(String) COMMENT 'seq_goto, seq_next, seq_prev (moves inside a sequence), else the name',
    course_id LowCardinality(String) COMMENT 'course key',
    org LowCardinality(String) COMMENT 'organisation',
    user_id Nullable(Int64) COMMENT 'learner id',
    username String COMMENT 'learner username',
    session String COMMENT 'tracking session',
    sequence_id String COMMENT 'usage key of the sequence (subsection) navigated in',
    current_tab Nullable(UInt32) COMMENT 'unit position before the move (1-based; old for legacy events)',
    target_tab Nullable(UInt32) COMMENT 'unit position after the move (new for legacy events)',
    tab_count Nullable(UInt32) COMMENT 'units in the sequence',
    current_url String COMMENT 'outline/link: page the learner was on',
    target_url String COMMENT 'outline/link: where the learner went',
    target_name String COMMENT 'outline: name of the selected block',
    widget_placement LowCardinality(String) COMMENT 'top or bottom navigation, when logged'
)
ENGINE = {{ table_engine('MergeTree') }}
PARTITION BY toYYYYMM(time)
ORDER BY (org, course_id, time)
SETTINGS {{ m.dedup_settings() }}
COMMENT 'Navigation events, one row per event';

CREATE MATERIALIZED VIEW IF NOT EXISTS `{{ database }}`._navigation_events_mv {{ on_cluster }}
TO `{{ database }}`.navigation_events
AS
SELECT
    event_id, time, name, event_type, course_id, org, user_id, username, session,
    JSONExtractString(payload, 'id') AS sequence_id,
    coalesce(JSONExtract(payload, 'current_tab', 'Nullable(UInt32)'), JSONExtract(payload, 'old', 'Nullable(UInt32)')) AS current_tab,
    coalesce(JSONExtract(payload, 'target_tab', 'Nullable(UInt32)'), JSONExtract(payload, 'new', 'Nullable(UInt32)')) AS target_tab,
    JSONExtract(payload, 'tab_count', 'Nullable(UInt32)') AS tab_count,
    JSONExtractString(payload, 'current_url') AS current_url,
    JSONExtractString(payload, 'target_url') AS target_url,
    JSONExtractString(payload, 'target_name') AS target_name,
    JSONExtractString(payload, 'widget_placement') AS widget_placement
FROM `{{ database }}`._event_rows
WHERE startsWith(name, 'edx.ui.lms.sequence.') OR startsWith(name, 'edx.ui.lms.outline.')
   OR name IN ('edx.ui.lms.link_clicked', 'edx.ui.lms.jump_nav.selected')
   OR event_type IN ('seq_goto', 'seq_next', 'seq_prev');
