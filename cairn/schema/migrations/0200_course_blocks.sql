-- openedx.course_blocks: the structure of every imported course, one row per block.
--
-- Filled by `cairn import-course` (OLX export folder or .tar.gz, or the JSON lines
-- printed by cairn/scripts/cairn_dump_course_blocks.py inside the LMS container).
-- Partitioned by course: a re-import writes the new blocks into `_course_blocks_staging`
-- and swaps the course's partition with ALTER TABLE ... REPLACE PARTITION, which is
-- atomic: a query sees either all the old blocks or all the new ones, never none.
{% import 'macros.jinja' as m %}

CREATE TABLE IF NOT EXISTS `{{ database }}`.course_blocks {{ on_cluster }}
(
    course_id String COMMENT 'course key (course-v1:ORG+COURSE+RUN)',
    org LowCardinality(String) COMMENT 'organisation of the course',
    block_key String COMMENT 'usage key: block-v1:ORG+COURSE+RUN+type@TYPE+block@ID (course root: type@course+block@course)',
    block_id String COMMENT 'short id, the part after block@: joins with video_events.video_id, problem_events.block_id, browser input ids',
    block_type LowCardinality(String) COMMENT 'course, chapter, sequential, vertical, html, video, problem, discussion, library_content, ...',
    display_name String COMMENT 'display name written on the block (empty when it has none)',
    parent String COMMENT 'usage key of the parent block (empty for the course root)',
    position UInt32 COMMENT '1-based position among the parent''s children (0 for the course root)',
    course_order UInt32 COMMENT 'depth-first (pre-order) index of the block in the course, 0 = course root; ORDER BY this to list the course as the learner sees it',
    depth UInt8 COMMENT '0 course, 1 section (chapter), 2 subsection (sequential), 3 unit (vertical), 4+ components',
    section_key String COMMENT 'usage key of the section (chapter) containing the block, or the block itself; empty above it',
    section_name String COMMENT 'display name of that section',
    section_index UInt32 COMMENT '1-based position of the section in the course (0 when none)',
    subsection_key String COMMENT 'usage key of the subsection (sequential) containing the block, or the block itself',
    subsection_name String COMMENT 'display name of that subsection',
    subsection_index UInt32 COMMENT '1-based position of the subsection in its section (0 when none)',
    unit_key String COMMENT 'usage key of the unit (vertical) containing the block, or the block itself',
    unit_name String COMMENT 'display name of that unit',
    unit_index UInt32 COMMENT '1-based position of the unit in its subsection (0 when none)',
    graded Bool COMMENT 'counts toward the grade: graded=true on the block or inherited from its subsection (problems under a graded subsection)',
    assignment_type String COMMENT 'assignment type (the subsection''s format, e.g. Homework, Exam), inherited by descendants; empty when none',
    weight Nullable(Float64) COMMENT 'problem weight when set on the block (NULL = default, points = number of inputs)',
    due Nullable(DateTime64(3, 'UTC')) COMMENT 'due date where known (set on the block or inherited from its subsection/section)',
    start Nullable(DateTime64(3, 'UTC')) COMMENT 'release date where set on the block or an ancestor',
    visible_to_staff_only Bool COMMENT 'hidden from learners (set on the block or an ancestor)',
    source String COMMENT 'where the structure came from: olx:<path>, jsonl:<path> or modulestore',
    imported_at DateTime64(3, 'UTC') COMMENT 'when this version of the course structure was imported'
)
ENGINE = {{ table_engine('MergeTree') }}
PARTITION BY course_id
ORDER BY (course_id, course_order)
COMMENT 'Course structure: one row per block of each imported course (latest import only)';

CREATE TABLE IF NOT EXISTS `{{ database }}`._course_blocks_staging {{ on_cluster }}
AS `{{ database }}`.course_blocks
ENGINE = {{ table_engine('MergeTree') }}
PARTITION BY course_id
ORDER BY (course_id, course_order)
COMMENT 'Internal: a course import is written here, then swapped into course_blocks';
