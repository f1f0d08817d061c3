-- The SQL the PostgreSQL store sends by hand, one named statement each.
--
-- Every value is a parameter, typed (server-side binding needs the types; a cast to a
-- bare type, without a length, fails a too-long value like the column's own check does).
-- Status literals are written {run.<name>}, {step.<name>} or {attempt.<name>}: the
-- loader (sql.py) fills them in from pipelines/lifecycle.py and refuses any other name.
-- Times are the database's clock: statement_timestamp() where no lock is waited for,
-- clock_timestamp() for what is stamped once the run's lock is held (a step's finish, a
-- successor's heartbeat), so that commit order and time order agree.
-- Lock order, as in every writer: the run's row before its steps' rows.

-- name: claim_update
-- Not a statement: the claim's UPDATE, which the statements that claim include as
-- {{claim_update}} and end with their own conditions and RETURNING. Only an execution
-- enqueued (or due for retry) at this very attempt moves to running, for this worker and
-- job, so a duplicate delivery claims nothing.
UPDATE pipelines_stepexecution
SET status = {step.running}, started_at = clock_timestamp(),
    heartbeat_at = clock_timestamp(), finished_at = NULL, retry_at = NULL,
    worker = %(worker)s::text, rq_job = %(job)s::text
WHERE id = %(claim)s::bigint AND attempt = %(claim_attempt)s::integer
  AND status IN ({step.enqueued}, {step.retrying})

-- name: claim
-- Claim a delivered attempt. A pending run is locked first (only then: sibling claims of
-- a big fan-out must not queue on a running run's lock) and started by the claim that
-- succeeds. Returns the execution's columns, then the run's, then the run's start time if
-- this claim started it.
WITH pending AS (
    SELECT id FROM pipelines_pipelinerun
    WHERE id = (SELECT run_id FROM pipelines_stepexecution WHERE id = %(claim)s::bigint)
      AND status = {run.pending}
    FOR NO KEY UPDATE
), claimed AS (
    {{claim_update}}
      AND (SELECT count(*) FROM pending) >= 0
    RETURNING *
), started AS (
    UPDATE pipelines_pipelinerun
    SET status = {run.running}, started_at = COALESCE(started_at, clock_timestamp())
    WHERE id IN (SELECT id FROM pending) AND status = {run.pending}
      AND EXISTS (SELECT 1 FROM claimed)
    RETURNING id, started_at
)
SELECT s.*, r.*, (SELECT started_at FROM started)
FROM claimed s JOIN pipelines_pipelinerun r ON r.id = s.run_id;

-- name: succeed
-- Commit the success of a step whose decision is plan.Next, plan.Finish or plan.Arrive
-- ({{success_head}}: lock the run, then the step while it is running at this attempt and
-- the run is active (the fence); move it to succeeded; upsert the attempt's row); then,
-- by the decision:
--   Next: insert the successor in the step's own frame (claimed for this worker when
--         %(claimed)s);
--   Finish: succeed the run;
--   Arrive: count the branch in at its barrier. When not %(completes)s, only an arrival
--         that leaves the barrier short counts (the statement runs alone, autocommitted);
--         the one that would complete it changes nothing and is sent again with
--         %(completes)s in a transaction, where the caller fires the join
--         (plan.barrier_complete). So the join fires in the transaction of the arrival
--         that completed its barrier, and never one arrival too early.
--         An arrival that counts may also claim the batch's next item for this worker
--         (%(claim)s, NULL for none), so that item needs no claim statement of its own.
-- The step's row is locked before the barrier is counted: a locking read sees the row's
-- newest version, so a step reclaimed while this statement waited for the run's lock
-- counts nothing.
-- Returns the run's status as locked, whether the fence held, whether the step moved, the
-- successor's id, two NULLs (fork's columns), the counted barrier's row (all NULL when
-- there is none), then the claimed item's columns (all NULL when none was claimed).
WITH {{success_head}}, successor AS (
    -- A chain's next step, from parameters: the most frequent insert, kept cheap.
    INSERT INTO pipelines_stepexecution
        (run_id, node, step, kind, compensates_id, status, attempt, queue, payload, output,
         route, barrier_id, branch_index, reported, held, worker, rq_job, error, created_at,
         enqueued_at, started_at, heartbeat_at, finished_at, retry_at, crash_count,
         event_name, event_deadline)
    SELECT run_id, %(next_node)s::text, %(next_step)s::text, {kind.step}, NULL,
           CASE WHEN %(claimed)s::boolean THEN {step.running} ELSE {step.enqueued} END,
           1, %(next_queue)s::text, %(output)s::jsonb, NULL, '', barrier_id, branch_index,
           false, false, %(worker)s::text, %(job)s::text, '', statement_timestamp(),
           statement_timestamp(),
           CASE WHEN %(claimed)s::boolean THEN clock_timestamp() END,
           CASE WHEN %(claimed)s::boolean THEN clock_timestamp() END,
           NULL, NULL, 0, '', NULL
    FROM step WHERE %(next_node)s::text IS NOT NULL
    RETURNING id
), finished AS (
    UPDATE pipelines_pipelinerun
    SET status = {run.succeeded}, output = %(output)s::jsonb, finished_at = clock_timestamp()
    WHERE id = %(run)s::bigint AND status IN ({run.pending}, {run.running}, {run.waiting})
      AND %(finishes)s::boolean AND EXISTS (SELECT 1 FROM step)
), ahead AS (
    {{claim_update}}
      AND EXISTS (SELECT 1 FROM step)
    RETURNING *
)
SELECT (SELECT status FROM run), (SELECT count(*) FROM fence), (SELECT count(*) FROM step),
       (SELECT id FROM successor), NULL::bigint, NULL::bigint[], bar.*, ahead.*
FROM (SELECT 1) AS one LEFT JOIN bar ON TRUE LEFT JOIN ahead ON TRUE;

-- name: success_head
-- Not a statement: the CTEs that begin every success commit. Lock the run, then the step
-- while it is running at this attempt and the run is active (the fence); count an
-- arrival at its barrier (see succeed); move the step to succeeded; upsert the
-- attempt's row. The step's row is locked before the barrier is counted: a locking read
-- sees the row's newest version, so a step reclaimed while the statement waited for the
-- run's lock counts nothing.
run AS (
    SELECT status FROM pipelines_pipelinerun WHERE id = %(run)s::bigint FOR NO KEY UPDATE
), fence AS (
    SELECT id, barrier_id FROM pipelines_stepexecution
    WHERE id = %(id)s::bigint AND attempt = %(attempt)s::integer AND status = {step.running}
      AND EXISTS (SELECT 1 FROM run WHERE status IN ({run.pending}, {run.running}, {run.waiting}))
    FOR NO KEY UPDATE
), bar AS (
    UPDATE pipelines_joinbarrier SET arrived = arrived + 1
    WHERE %(arrives)s::boolean AND id = (SELECT barrier_id FROM fence)
      AND (%(completes)s::boolean OR arrived + 1 < expected)
    RETURNING id, run_id, node, expected, arrived, parent_id, parent_branch, fired_at
), step AS (
    UPDATE pipelines_stepexecution
    SET status = {step.succeeded}, finished_at = clock_timestamp(), error = '',
        output = %(output)s::jsonb, route = %(route)s::text, reported = %(arrives)s::boolean
    WHERE id = (SELECT id FROM fence) AND attempt = %(attempt)s::integer
      AND status = {step.running} AND (NOT %(arrives)s::boolean OR EXISTS (SELECT 1 FROM bar))
    RETURNING id, run_id, worker, started_at, barrier_id, branch_index
), attempt_row AS (
    INSERT INTO pipelines_stepattempt (execution_id, number, status, worker, started_at,
                                       finished_at, error, traceback, conflict_reruns)
    SELECT id, %(attempt)s::integer, {attempt.succeeded}, worker,
           COALESCE(started_at, clock_timestamp()), clock_timestamp(), '', '',
           %(reruns)s::integer
    FROM step
    ON CONFLICT (execution_id, number) DO UPDATE SET
        status = EXCLUDED.status, worker = EXCLUDED.worker, started_at = EXCLUDED.started_at,
        finished_at = EXCLUDED.finished_at, error = '', traceback = '',
        conflict_reruns = EXCLUDED.conflict_reruns
)

-- name: fork
-- Commit the success of a step whose decision is plan.Fork ({{success_head}}, with no
-- arrival), then open a barrier for %(join)s in the step's frame and insert its branches
-- (%(created)s: a row each, in branch order; the store marks the ones this worker keeps).
-- A statement of its own: the JSON insert would slow down every chain step's commit.
-- Returns what succeed returns, with the opened barrier's id and the branches' ids.
WITH {{success_head}}, opened AS (
    INSERT INTO pipelines_joinbarrier (run_id, node, expected, arrived, parent_id,
                                       parent_branch, fired_at)
    SELECT run_id, %(join)s::text, %(expected)s::integer, 0, barrier_id, branch_index, NULL
    FROM step WHERE %(join)s::text IS NOT NULL
    RETURNING id
), created AS (
    -- The same columns as succeed's successor, from one JSON array.
    INSERT INTO pipelines_stepexecution
        (run_id, node, step, kind, compensates_id, status, attempt, queue, payload, output,
         route, barrier_id, branch_index, reported, held, worker, rq_job, error, created_at,
         enqueued_at, started_at, heartbeat_at, finished_at, retry_at, crash_count,
         event_name, event_deadline)
    SELECT step.run_id, c.node, c.step, {kind.step}, NULL,
           CASE WHEN c.claimed THEN {step.running} ELSE {step.enqueued} END,
           1, c.queue, c.payload, NULL, '', COALESCE(c.barrier_id, (SELECT id FROM opened)),
           c.branch_index, false, false, c.worker, c.rq_job, '', statement_timestamp(),
           statement_timestamp(),
           CASE WHEN c.claimed THEN clock_timestamp() END,
           CASE WHEN c.claimed THEN clock_timestamp() END,
           NULL, NULL, 0, '', NULL
    FROM step, ROWS FROM (jsonb_to_recordset(%(created)s::jsonb)
        AS (node text, step text, queue text, payload jsonb, barrier_id bigint,
            branch_index integer, worker text, rq_job text, claimed boolean))
        WITH ORDINALITY AS c(node, step, queue, payload, barrier_id, branch_index, worker,
                             rq_job, claimed, n)
    ORDER BY c.n
    RETURNING id
)
SELECT (SELECT status FROM run), (SELECT count(*) FROM fence), (SELECT count(*) FROM step),
       NULL::bigint, (SELECT id FROM opened), (SELECT array_agg(id ORDER BY id) FROM created),
       bar.*
FROM (SELECT 1) AS one LEFT JOIN bar ON TRUE;

-- name: merge_context
-- Apply a set of context writes with their history rows, in one statement: the merge
-- (data || new) happens only if none of the keys written without overwrite exists yet
-- (the write-once rule). Concurrent writers queue on the context row's lock and
-- PostgreSQL re-checks the condition against the committed row, so of two writers racing
-- for a new key exactly one wins. Returns one row per history row written: none when a
-- key was taken.
WITH w AS (
    SELECT * FROM jsonb_to_recordset(%(writes)s::jsonb) AS w(key text, value jsonb, overwrite bool)
), merged AS (
    UPDATE pipelines_runcontext
    SET data = data || (SELECT jsonb_object_agg(key, value) FROM w),
        updated_at = clock_timestamp()
    WHERE run_id = %(run)s::bigint AND NOT (data ?| %(guarded)s::text[])
    RETURNING run_id
)
INSERT INTO pipelines_contextwrite
    (run_id, key, value, execution_id, step, attempt, overwrite, written_at)
SELECT merged.run_id, w.key, w.value, %(execution)s::bigint, %(step)s::text,
       %(attempt)s::integer, w.overwrite, clock_timestamp()
FROM merged, w
RETURNING id;
