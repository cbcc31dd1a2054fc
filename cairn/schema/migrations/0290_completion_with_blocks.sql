-- Block completion with the course structure (openedx.course_blocks, migration 0200) and
-- the learner. Blocks not imported yet (no `cairn import-course`) keep empty names.

CREATE VIEW IF NOT EXISTS `{{ database }}`.completion_with_blocks {{ on_cluster }}
AS SELECT
    c.user_id AS user_id,
    u.username AS username,
    c.course_key AS course_id,
    c.block_key AS block_key,
    c.block_type AS block_type,
    c.completion AS completion,
    c.modified AS completed_at,
    b.display_name AS display_name,
    b.course_order AS course_order,
    b.section_name AS section_name,
    b.subsection_name AS subsection_name,
    b.unit_name AS unit_name,
    b.graded AS graded,
    b.assignment_type AS assignment_type,
    b.due AS due
FROM `{{ database }}`.block_completion AS c
LEFT JOIN `{{ database }}`.course_blocks AS b ON b.course_id = c.course_key AND b.block_key = c.block_key
LEFT JOIN `{{ database }}`.users AS u ON u.id = c.user_id
COMMENT 'One row per completed block and learner, with the block names and position in the course';
