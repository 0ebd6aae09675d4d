-- The data generation: a number that moves on with every change to the tables cached API
-- answers are built from (apps, spaces, organizations and their metadata). A trigger
-- moves it in the same transaction as the change, so a reader that reads the number
-- before the data never files data older than the number it read.
--
-- PostgreSQL: the triggers are deferred to commit. The row lock on the number is then
-- the last lock a writer takes, so two writers can wait on each other's commit but
-- never deadlock over it. The number moves once per transaction (`xid` says which moved
-- it last): moving it once per changed row made a commit of n rows cost n updates of one
-- row, each walking a longer chain of its versions.
CREATE TABLE data_generation (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n BIGINT NOT NULL,
    xid xid8
);
INSERT INTO data_generation (id, n) VALUES (1, 0);

CREATE FUNCTION hearth_next_data_generation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE data_generation SET n = n + 1, xid = pg_current_xact_id()
        WHERE id = 1 AND xid IS DISTINCT FROM pg_current_xact_id();
    RETURN NULL;
END
$$;

CREATE CONSTRAINT TRIGGER apps_generation AFTER INSERT OR UPDATE OR DELETE ON apps
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION hearth_next_data_generation();
CREATE CONSTRAINT TRIGGER spaces_generation AFTER INSERT OR UPDATE OR DELETE ON spaces
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION hearth_next_data_generation();
CREATE CONSTRAINT TRIGGER organizations_generation AFTER INSERT OR UPDATE OR DELETE ON organizations
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION hearth_next_data_generation();
CREATE CONSTRAINT TRIGGER metadata_generation AFTER INSERT OR UPDATE OR DELETE ON metadata
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION hearth_next_data_generation();
