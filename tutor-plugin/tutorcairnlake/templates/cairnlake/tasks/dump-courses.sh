# In the LMS image: print course structures from the modulestore as JSON lines for
# `cairn import-course` (arguments: course keys, or none for every course).
[ "$#" -gt 0 ] || set -- --all
mkdir -p /cairnlake-courses
python /cairnlake-scripts/cairn_dump_course_blocks.py "$@" > /cairnlake-courses/blocks.jsonl.part
mv /cairnlake-courses/blocks.jsonl.part /cairnlake-courses/blocks.jsonl
echo "Course structure dumped: $(wc -l < /cairnlake-courses/blocks.jsonl) lines."
