# A MySQL account that may only read the Open edX tables Cairn brings into the datalake.
{% if CAIRNLAKE_MYSQL_ENABLED -%}
cairnlake_mysql() {
    mysql -u "{{ MYSQL_ROOT_USERNAME }}" --password="{{ MYSQL_ROOT_PASSWORD }}" --host "{{ MYSQL_HOST }}" --port "{{ MYSQL_PORT }}" -e "$1"
}
cairnlake_mysql "CREATE USER IF NOT EXISTS '{{ CAIRNLAKE_MYSQL_USERNAME }}'@'%' IDENTIFIED BY '{{ CAIRNLAKE_MYSQL_PASSWORD }}';"
cairnlake_mysql "ALTER USER '{{ CAIRNLAKE_MYSQL_USERNAME }}'@'%' IDENTIFIED BY '{{ CAIRNLAKE_MYSQL_PASSWORD }}';"
for cairnlake_table in auth_user auth_userprofile student_courseenrollment grades_persistentcoursegrade \
        grades_persistentsubsectiongrade completion_blockcompletion course_overviews_courseoverview \
        student_courseaccessrole certificates_generatedcertificate
do
    cairnlake_mysql "GRANT SELECT ON \`{{ OPENEDX_MYSQL_DATABASE }}\`.\`$cairnlake_table\` TO '{{ CAIRNLAKE_MYSQL_USERNAME }}'@'%';"
done
echo "MySQL account {{ CAIRNLAKE_MYSQL_USERNAME }} may read the Open edX tables of the datalake."
{%- else -%}
echo "Open edX MySQL tables are off (CAIRNLAKE_MYSQL_ENABLED=false)."
{%- endif %}
