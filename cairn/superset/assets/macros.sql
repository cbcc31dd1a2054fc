{#- Macros every dataset's SQL may use. The bundle builder puts this text in front of
    each dataset's SQL: Superset renders dataset SQL with Jinja (ENABLE_TEMPLATE_PROCESSING)
    but has no way to include another file. Each macro reads the dashboard's native
    filters and writes them into the dataset's own WHERE clauses, so a chart filtered on
    one course reads that course's rows only (the tables are sorted by org, course, time). -#}

{#- The org and course filters. `remove_filter=True` tells Superset they are applied here,
    so the outer query does not need the columns. `org_col` may be an expression. -#}
{%- macro scope(course_col='course_id', org_col='org') -%}
{%- set courses = filter_values('course_id', remove_filter=True) -%}
{%- set orgs = filter_values('org', remove_filter=True) -%}
{%- if courses %} AND {{ course_col }} IN {{ courses|where_in }}{% endif -%}
{%- if orgs %} AND {{ org_col }} IN {{ orgs|where_in }}{% endif -%}
{%- endmacro -%}

{#- The organisation of a course key (course-v1:ORG+..., ccx-v1:ORG+..., ORG/COURSE/RUN), for
    tables that have no org column. -#}
{%- macro org_of(course_col) -%}
if(position({{ course_col }}, ':') > 0, splitByChar('+', splitByChar(':', {{ course_col }})[2])[1], splitByChar('/', {{ course_col }})[1])
{%- endmacro -%}

{#- The dashboard's date range on a time column (from_dttm/to_dttm come from Superset). -#}
{%- macro period(time_col) -%}
{%- if from_dttm %} AND {{ time_col }} >= parseDateTime64BestEffort({{ [from_dttm]|where_in }}, 6, 'UTC'){% endif -%}
{%- if to_dttm %} AND {{ time_col }} < parseDateTime64BestEffort({{ [to_dttm]|where_in }}, 6, 'UTC'){% endif -%}
{%- endmacro -%}

{#- A filter on any other column (learner, video): `column IN (...)` when it has values. -#}
{%- macro chosen(filter_name, expr) -%}
{%- set values = filter_values(filter_name, remove_filter=True) -%}
{%- if values %} AND {{ expr }} IN {{ values|where_in }}{% endif -%}
{%- endmacro -%}

{#- Names of blocks in course order: "03.2.1 Unit name" sorts as the course reads. -#}
{%- macro section_label(b) -%}
concat(leftPad(toString({{ b }}.section_index), 2, '0'), ' ', {{ b }}.section_name)
{%- endmacro -%}
{%- macro subsection_label(b) -%}
concat(leftPad(toString({{ b }}.section_index), 2, '0'), '.', toString({{ b }}.subsection_index), ' ', {{ b }}.subsection_name)
{%- endmacro -%}
{%- macro block_label(b) -%}
concat(leftPad(toString({{ b }}.section_index), 2, '0'), '.', toString({{ b }}.subsection_index), '.', toString({{ b }}.unit_index), ' ', {{ b }}.display_name)
{%- endmacro -%}

{#- The Learner filter; without a value, the learner with the most events in the filtered courses, so
    the individual dashboards always show someone. -#}
{%- macro learner(col='username') -%}
{%- set names = filter_values('username', remove_filter=True) -%}
{%- if names %} AND {{ col }} IN {{ names|where_in }}
{%- else %} AND {{ col }} = (SELECT username FROM events WHERE username != '' AND user_id > 0 AND course_id != '' {{ scope() }} GROUP BY username ORDER BY count() DESC, username LIMIT 1)
{%- endif -%}
{%- endmacro -%}
