-- At most one queued, collecting or reconciling run per integration: a
-- second "Sync now" while one is active returns that run.
CREATE UNIQUE INDEX runs_one_active_per_integration ON runs (integration_id)
    WHERE state IN ('queued', 'collecting', 'reconciling');
