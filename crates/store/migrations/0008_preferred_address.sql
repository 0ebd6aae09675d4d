-- Which address of an instance others dial (Diego's preferred_address): INSTANCE, the
-- container's own address and port (a cell beside the router), or HOST, its cell machine's
-- address and the mapped host port (a cell on another machine).
ALTER TABLE actual_lrps ADD COLUMN preferred_address TEXT NOT NULL DEFAULT 'INSTANCE';
