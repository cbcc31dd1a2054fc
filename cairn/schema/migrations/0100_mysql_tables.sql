-- Open edX MySQL tables in the datalake: users, user_profiles, enrollments, course_grades,
-- subsection_grades, block_completion, course_overviews, course_access_roles, certificates.
--
-- For each table T (MySQL table M):
--   _mysql_T_copy    MergeTree: the synced copy (kept when MySQL is down; `_synced_at` is a
--                    hidden MATERIALIZED column: when the row was copied)
--   _mysql_T_live    ENGINE = MySQL: reads M at query time (only when mysql.enabled; same
--                    columns without LowCardinality, which the MySQL engine does not support)
--   _mysql_T_refresh refreshable materialized view: copies _mysql_T_live into _mysql_T_copy
--                    every N seconds (only in synced mode; created EMPTY: the first copy
--                    comes at the next period boundary, or now with `cairn mysql sync`)
--   T                the view analysts query: SELECT from _mysql_T_copy (synced, or MySQL
--                    disabled) or _mysql_T_live (live)
-- The MySQL credentials live in the named collection `<database>_mysql` (never in table
-- definitions, hidden by SHOW CREATE and system.named_collections).
--
-- This file renders according to the configuration (mysql.enabled, mysql.mode,
-- mysql.tables.T.mode, refresh periods) and every statement is idempotent and reconciling:
-- `cairn mysql apply` renders and runs it again after a configuration change (objects of
-- another mode are dropped, live tables recreated with the current credentials, refresh
-- views created if missing and their period updated; synced copies are kept).
-- Creating these objects never connects to MySQL, so `cairn migrate` works without it.

{%- set DT = "DateTime64(6, 'UTC')" %}
{%- set NDT = "Nullable(DateTime64(6, 'UTC'))" %}
{%- set tables = [
  ("users", "auth_user", "id", "Open edX accounts (MySQL auth_user; the password hash is not copied)", [
    ("id", "Int32", "user id (auth_user.id), the user_id of every other table and of events"),
    ("last_login", NDT, "last login time (UTC)"),
    ("is_superuser", "Bool", "Django superuser"),
    ("username", "String", "username (retired accounts: retired__user_...)"),
    ("first_name", "String", "first name (mostly unused; see user_profiles.name)"),
    ("last_name", "String", "last name (mostly unused)"),
    ("email", "String", "email address"),
    ("is_staff", "Bool", "global staff"),
    ("is_active", "Bool", "account activated by email (false until then)"),
    ("date_joined", DT, "registration time (UTC)")]),
  ("user_profiles", "auth_userprofile", "user_id", "Learner profiles (MySQL auth_userprofile)", [
    ("id", "Int32", "profile id"),
    ("user_id", "Int32", "users.id (unique)"),
    ("name", "String", "full name"),
    ("meta", "String", "JSON metadata"),
    ("courseware", "String", "obsolete (course.xml)"),
    ("language", "String", "obsolete"),
    ("location", "String", "obsolete"),
    ("year_of_birth", "Nullable(Int32)", "year of birth"),
    ("gender", "LowCardinality(Nullable(String))", "m, f, o or NULL"),
    ("level_of_education", "LowCardinality(Nullable(String))", "p, m, b, a, hs, jhs, el, none, other (legacy p_se, p_oth) or NULL"),
    ("mailing_address", "Nullable(String)", "mailing address"),
    ("city", "Nullable(String)", "city"),
    ("country", "LowCardinality(Nullable(String))", "ISO 3166 country code"),
    ("state", "LowCardinality(Nullable(String))", "state code"),
    ("goals", "Nullable(String)", "learner goals"),
    ("bio", "Nullable(String)", "biography"),
    ("profile_image_uploaded_at", NDT, "when the profile image was uploaded"),
    ("phone_number", "Nullable(String)", "phone number")]),
  ("enrollments", "student_courseenrollment", "course_id, user_id", "Course enrollments (MySQL student_courseenrollment; unenrolled rows stay with is_active = false)", [
    ("id", "Int32", "enrollment id"),
    ("user_id", "Int32", "users.id"),
    ("course_id", "LowCardinality(String)", "course key"),
    ("created", NDT, "enrollment time (UTC)"),
    ("is_active", "Bool", "enrolled now (false after unenrolling)"),
    ("mode", "LowCardinality(String)", "audit, verified, honor, professional, no-id-professional, masters, ...")]),
  ("course_grades", "grades_persistentcoursegrade", "course_id, user_id", "Course grades (MySQL grades_persistentcoursegrade)", [
    ("id", "UInt64", "grade id"),
    ("user_id", "Int32", "users.id"),
    ("course_id", "LowCardinality(String)", "course key"),
    ("course_edited_timestamp", NDT, "course version time the grade was computed on"),
    ("course_version", "String", "course version"),
    ("grading_policy_hash", "String", "hash of the grading policy"),
    ("percent_grade", "Float64", "grade, 0.0 to 1.0"),
    ("letter_grade", "LowCardinality(String)", "letter grade (Pass, A, ...; empty when failing)"),
    ("passed_timestamp", NDT, "when the learner first passed (NULL: never)"),
    ("created", DT, "row created (UTC)"),
    ("modified", DT, "last recomputed (UTC)")]),
  ("subsection_grades", "grades_persistentsubsectiongrade", "course_id, user_id, usage_key", "Subsection grades (MySQL grades_persistentsubsectiongrade)", [
    ("id", "UInt64", "grade id"),
    ("user_id", "Int32", "users.id"),
    ("course_id", "LowCardinality(String)", "course key"),
    ("usage_key", "String", "usage key of the subsection (sequential)"),
    ("subtree_edited_timestamp", NDT, "edit time of the subsection content"),
    ("course_version", "String", "course version"),
    ("earned_all", "Float64", "points earned, all problems"),
    ("possible_all", "Float64", "points possible, all problems"),
    ("earned_graded", "Float64", "points earned, graded problems"),
    ("possible_graded", "Float64", "points possible, graded problems"),
    ("first_attempted", NDT, "first attempt time (NULL: never attempted)"),
    ("visible_blocks_hash", "String", "grades_visibleblocks.hashed"),
    ("created", DT, "row created (UTC)"),
    ("modified", DT, "last recomputed (UTC)")]),
  ("block_completion", "completion_blockcompletion", "course_key, user_id, block_key", "Block completion (MySQL completion_blockcompletion)", [
    ("id", "Int64", "completion id"),
    ("user_id", "Int32", "users.id"),
    ("course_key", "LowCardinality(String)", "course key (model field context_key)"),
    ("block_key", "String", "usage key of the block"),
    ("block_type", "LowCardinality(String)", "block type (video, problem, html, ...)"),
    ("completion", "Float64", "0.0 to 1.0 (in practice 0 or 1)"),
    ("created", DT, "row created (UTC)"),
    ("modified", DT, "last change (UTC)")]),
  ("course_overviews", "course_overviews_courseoverview", "id", "Course settings cache, rebuilt on publish (MySQL course_overviews_courseoverview)", [
    ("id", "String", "course key"),
    ("created", DT, "row created (UTC)"),
    ("modified", DT, "last rebuilt (UTC), i.e. last publish"),
    ("version", "Int32", "model version"),
    ("_location", "String", "usage key of the course root"),
    ("org", "LowCardinality(String)", "organisation"),
    ("display_name", "Nullable(String)", "course title"),
    ("display_number_with_default", "String", "course number"),
    ("display_org_with_default", "String", "organisation as displayed"),
    ("start", NDT, "course start"),
    ("end", NDT, "course end"),
    ("advertised_start", "Nullable(String)", "advertised start text"),
    ("announcement", NDT, "announcement date"),
    ("banner_image_url", "String", "banner image URL"),
    ("course_image_url", "String", "course image URL"),
    ("social_sharing_url", "Nullable(String)", "social sharing URL"),
    ("end_of_course_survey_url", "Nullable(String)", "end-of-course survey URL"),
    ("certificates_display_behavior", "Nullable(String)", "early_no_info, end, end_with_date"),
    ("certificates_show_before_end", "Bool", "deprecated"),
    ("cert_html_view_enabled", "Bool", "web certificates enabled"),
    ("has_any_active_web_certificate", "Bool", "an active web certificate exists"),
    ("cert_name_short", "String", "certificate short name"),
    ("cert_name_long", "String", "certificate long name"),
    ("certificate_available_date", NDT, "when certificates become available"),
    ("lowest_passing_grade", "Nullable(Decimal(5, 2))", "passing threshold, 0.00 to 1.00"),
    ("days_early_for_beta", "Nullable(Float64)", "days of early access for beta testers"),
    ("mobile_available", "Bool", "available on mobile"),
    ("visible_to_staff_only", "Bool", "hidden from learners"),
    ("_pre_requisite_courses_json", "String", "JSON list of prerequisite course keys"),
    ("enrollment_start", NDT, "enrollment opens"),
    ("enrollment_end", NDT, "enrollment closes"),
    ("enrollment_domain", "Nullable(String)", "enrollment restricted to this domain"),
    ("invitation_only", "Bool", "enrollment by invitation only"),
    ("max_student_enrollments_allowed", "Nullable(Int32)", "enrollment cap"),
    ("catalog_visibility", "Nullable(String)", "both, about, none"),
    ("short_description", "Nullable(String)", "short description"),
    ("course_video_url", "Nullable(String)", "intro video URL"),
    ("effort", "Nullable(String)", "effort text"),
    ("marketing_url", "Nullable(String)", "marketing page URL"),
    ("self_paced", "Bool", "self-paced course"),
    ("eligible_for_financial_aid", "Bool", "financial aid available"),
    ("has_highlights", "Nullable(Bool)", "has course highlights"),
    ("enable_proctored_exams", "Bool", "proctored exams enabled"),
    ("proctoring_provider", "Nullable(String)", "proctoring provider"),
    ("proctoring_escalation_email", "Nullable(String)", "proctoring escalation email"),
    ("allow_proctoring_opt_out", "Bool", "learners may opt out of proctoring"),
    ("entrance_exam_enabled", "Bool", "entrance exam enabled"),
    ("entrance_exam_id", "String", "usage key of the entrance exam"),
    ("entrance_exam_minimum_score_pct", "Float64", "entrance exam passing score"),
    ("force_on_flexible_peer_openassessments", "Bool", "flexible peer grading forced on"),
    ("external_id", "Nullable(String)", "external id"),
    ("language", "Nullable(String)", "course language")]),
  ("course_access_roles", "student_courseaccessrole", "user_id, org, course_id, role", "Staff roles on courses and organisations (MySQL student_courseaccessrole)", [
    ("id", "Int32", "role assignment id"),
    ("user_id", "Int32", "users.id"),
    ("org", "LowCardinality(String)", "organisation (empty for global roles)"),
    ("course_id", "LowCardinality(String)", "course key (empty: org-wide role)"),
    ("role", "LowCardinality(String)", "instructor, staff, limited_staff, beta_testers, data_researcher, ...")]),
  ("certificates", "certificates_generatedcertificate", "course_id, user_id", "Course certificates (MySQL certificates_generatedcertificate)", [
    ("id", "Int32", "certificate id"),
    ("user_id", "Int32", "users.id"),
    ("course_id", "LowCardinality(String)", "course key"),
    ("verify_uuid", "String", "verification uuid"),
    ("grade", "String", "grade when generated (snapshot)"),
    ("key", "String", "certificate key"),
    ("distinction", "Bool", "with distinction"),
    ("status", "LowCardinality(String)", "downloadable (issued), notpassing, unavailable, ..."),
    ("mode", "LowCardinality(String)", "enrollment mode of the certificate"),
    ("name", "String", "learner name on the certificate"),
    ("created_date", DT, "row created (UTC)"),
    ("modified_date", DT, "last change (UTC)"),
    ("download_uuid", "String", "legacy"),
    ("download_url", "String", "legacy"),
    ("error_reason", "String", "legacy")]),
] %}
{%- set collection = database ~ "_mysql" %}

{% if mysql.enabled %}
CREATE NAMED COLLECTION IF NOT EXISTS `{{ collection }}` {{ on_cluster }} AS
    host = {{ mysql.host | sql_string }}, port = {{ mysql.port }}, user = {{ mysql.user | sql_string }},
    password = {{ mysql.password | sql_string }}, database = {{ mysql.database | sql_string }};

ALTER NAMED COLLECTION `{{ collection }}` {{ on_cluster }} SET
    host = {{ mysql.host | sql_string }}, port = {{ mysql.port }}, user = {{ mysql.user | sql_string }},
    password = {{ mysql.password | sql_string }}, database = {{ mysql.database | sql_string }};
{% endif %}

{#- The MySQL engine does not support LowCardinality, and it parses doubles imprecisely
    (0.75 read as 0.7500000000000001): the live table declares doubles as text, converted
    exactly by ClickHouse when read. -#}
{%- macro live_type(type) -%}
{%- set base = type[15:-1] if type.startswith("LowCardinality(") else type -%}
{{- {"Float64": "String", "Nullable(Float64)": "Nullable(String)"}.get(base, base) -}}
{%- endmacro %}
{%- macro read_live(columns) -%}
{%- for column, type, help in columns %}
    {% if "Float64" in type %}CAST(`{{ column }}` AS {{ type }}) AS {% endif %}`{{ column }}`{{ "," if not loop.last }}
{%- endfor %}
{%- endmacro %}

{% for name, source, order_by, comment, columns in tables %}
{%- set mode = mysql["tables." ~ name ~ ".mode"] or mysql.mode %}
{%- set period = mysql["tables." ~ name ~ ".refresh_seconds"] or mysql.refresh_seconds %}
{%- set live = mysql.enabled and mode == "live" %}
{%- set synced = mysql.enabled and mode != "live" %}
-- {{ name }} <- MySQL {{ source }}: {{ "disabled" if not mysql.enabled else mode }}
CREATE TABLE IF NOT EXISTS `{{ database }}`.`_mysql_{{ name }}_copy` {{ on_cluster }}
(
{%- for column, type, help in columns %}
    `{{ column }}` {{ type }} COMMENT {{ help | sql_string }},
{%- endfor %}
    `_synced_at` DateTime64(3, 'UTC') MATERIALIZED now64(3) COMMENT 'when the row was copied from MySQL'
)
ENGINE = MergeTree
ORDER BY ({{ order_by }})
COMMENT {{ ("Synced copy of MySQL " ~ source ~ " (internal: query " ~ name ~ ")") | sql_string }};

{% if not synced %}
DROP VIEW IF EXISTS `{{ database }}`.`_mysql_{{ name }}_refresh` {{ on_cluster }} SYNC;
{% endif %}

{% if mysql.enabled %}
CREATE OR REPLACE TABLE `{{ database }}`.`_mysql_{{ name }}_live` {{ on_cluster }}
(
{%- for column, type, help in columns %}
    `{{ column }}` {{ live_type(type) }} COMMENT {{ help | sql_string }}{{ "," if not loop.last }}
{%- endfor %}
)
ENGINE = MySQL(`{{ collection }}`, `table` = {{ source | sql_string }})
SETTINGS connect_timeout = 3, read_write_timeout = 300, connection_max_tries = 2
COMMENT {{ ("MySQL " ~ source ~ ", read at query time (internal: query " ~ name ~ ")") | sql_string }};
{% endif %}

CREATE OR REPLACE VIEW `{{ database }}`.`{{ name }}` {{ on_cluster }}
AS SELECT
{%- if live %}{{ read_live(columns) }}
{%- else %}
{%- for column, type, help in columns %}
    `{{ column }}`{{ "," if not loop.last }}
{%- endfor %}
{%- endif %}
FROM `{{ database }}`.`_mysql_{{ name }}_{{ "live" if live else "copy" }}`
COMMENT {{ (comment ~ "; " ~ ("live: reads MySQL at query time" if live else ("synced every " ~ period ~ " s" if mysql.enabled else "MySQL disabled: last copy"))) | sql_string }};

{% if not mysql.enabled %}
DROP TABLE IF EXISTS `{{ database }}`.`_mysql_{{ name }}_live` {{ on_cluster }} SYNC;
{% endif %}

{% if synced %}
CREATE MATERIALIZED VIEW IF NOT EXISTS `{{ database }}`.`_mysql_{{ name }}_refresh` {{ on_cluster }}
REFRESH EVERY {{ period }} SECOND
TO `{{ database }}`.`_mysql_{{ name }}_copy` EMPTY
AS SELECT{{ read_live(columns) }}
FROM `{{ database }}`.`_mysql_{{ name }}_live`;

ALTER TABLE `{{ database }}`.`_mysql_{{ name }}_refresh` {{ on_cluster }} MODIFY REFRESH EVERY {{ period }} SECOND;
{% endif %}
{% endfor %}

{% if not mysql.enabled %}
-- MySQL disabled: no credentials kept once no table uses them.
DROP NAMED COLLECTION IF EXISTS `{{ collection }}` {{ on_cluster }};
{% endif %}
