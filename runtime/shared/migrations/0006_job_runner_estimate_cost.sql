-- Where each job ran, on what, what it was expected to cost in time, and what it took
-- (issue 15): runtime.shared.estimate fills the estimate, the dispatcher the placement, the
-- worker compute_seconds; the status response derives an estimated cost from them
-- (runtime.shared.prices).
ALTER TABLE jobs
    ADD COLUMN runner                text CHECK (runner IN ('lambda', 'fargate', 'local')),
    ADD COLUMN probe                 jsonb,
    ADD COLUMN task_cpu              integer CHECK (task_cpu > 0),
    ADD COLUMN task_memory_mib       integer CHECK (task_memory_mib > 0),
    ADD COLUMN price_class           text CHECK (price_class IN ('x86', 'arm', 'spot')),
    ADD COLUMN timeout_seconds       integer CHECK (timeout_seconds > 0),
    ADD COLUMN estimated_cpu_seconds double precision CHECK (estimated_cpu_seconds >= 0),
    ADD COLUMN estimated_seconds     double precision CHECK (estimated_seconds >= 0),
    ADD COLUMN compute_seconds       double precision CHECK (compute_seconds >= 0);
