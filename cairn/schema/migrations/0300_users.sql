-- openedx._users: datalake accounts of `cairn serve` (embedded engine) and the scopes of
-- every account (both engines). Internal: only admins can read it.
--
-- One row per change; the latest `version` of a name wins (deleted rows are tombstones).
-- Passwords are argon2id hashes; with the server engine ClickHouse holds the password
-- itself and `password_hash` stays empty.
{% import 'macros.jinja' as m %}

CREATE TABLE IF NOT EXISTS `{{ database }}`._users {{ on_cluster }}
(
    name String COMMENT 'login name',
    password_hash String COMMENT 'argon2id hash (PHC string); empty with the server engine',
    admin Bool COMMENT 'sees and may do everything',
    course_ids Array(String) COMMENT 'course keys the user may see',
    org_ids Array(String) COMMENT 'organisations whose courses the user may see',
    deleted Bool DEFAULT false COMMENT 'tombstone written by `cairn deleteuser`',
    version UInt64 COMMENT 'microseconds since epoch of the change; the highest wins',
    changed_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = {{ table_engine('ReplacingMergeTree', 'version') }}
ORDER BY name
COMMENT 'Datalake users and their course/org scopes (internal)';
