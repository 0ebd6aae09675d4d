-- Lists order by creation time (then guid) by default: index that order so a page is
-- read from the index instead of sorting the whole table.
CREATE INDEX organizations_created ON organizations(created_at, guid);
CREATE INDEX spaces_created ON spaces(created_at, guid);
CREATE INDEX apps_created ON apps(created_at, guid);
CREATE INDEX apps_name ON apps(name);
CREATE INDEX processes_created ON processes(created_at, guid);
CREATE INDEX routes_created ON routes(created_at, guid);
CREATE INDEX roles_created ON roles(created_at, guid);
CREATE INDEX domains_created ON domains(created_at, guid);
CREATE INDEX users_created ON users(created_at, guid);
CREATE INDEX metadata_label ON metadata(kind, key, value);
