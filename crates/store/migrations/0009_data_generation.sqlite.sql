-- The data generation: a number that moves on with every change to the tables cached API
-- answers are built from (apps, spaces, organizations and their metadata). A trigger
-- moves it in the same transaction as the change, so a reader that reads the number
-- before the data never files data older than the number it read. (SQLite: one
-- trigger per table and kind of change; the write lock makes them run one at a time.)
CREATE TABLE data_generation (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n BIGINT NOT NULL
);
INSERT INTO data_generation (id, n) VALUES (1, 0);

CREATE TRIGGER apps_generation_insert AFTER INSERT ON apps
BEGIN UPDATE data_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER apps_generation_update AFTER UPDATE ON apps
BEGIN UPDATE data_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER apps_generation_delete AFTER DELETE ON apps
BEGIN UPDATE data_generation SET n = n + 1 WHERE id = 1; END;

CREATE TRIGGER spaces_generation_insert AFTER INSERT ON spaces
BEGIN UPDATE data_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER spaces_generation_update AFTER UPDATE ON spaces
BEGIN UPDATE data_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER spaces_generation_delete AFTER DELETE ON spaces
BEGIN UPDATE data_generation SET n = n + 1 WHERE id = 1; END;

CREATE TRIGGER organizations_generation_insert AFTER INSERT ON organizations
BEGIN UPDATE data_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER organizations_generation_update AFTER UPDATE ON organizations
BEGIN UPDATE data_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER organizations_generation_delete AFTER DELETE ON organizations
BEGIN UPDATE data_generation SET n = n + 1 WHERE id = 1; END;

CREATE TRIGGER metadata_generation_insert AFTER INSERT ON metadata
BEGIN UPDATE data_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER metadata_generation_update AFTER UPDATE ON metadata
BEGIN UPDATE data_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER metadata_generation_delete AFTER DELETE ON metadata
BEGIN UPDATE data_generation SET n = n + 1 WHERE id = 1; END;
