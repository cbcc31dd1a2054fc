# Import the course structures dumped by the LMS job (replaces each course atomically).
if [ -s /cairnlake-courses/blocks.jsonl ]; then
    {% include "cairnlake/tasks/wait-datalake.sh" %}
    cairn import-course /cairnlake-courses/blocks.jsonl
else
    echo "No course structure to import (no course in the modulestore yet)."
fi
