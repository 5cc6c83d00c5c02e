-- Named operators of /ops, their dashboard sessions, and the append-only audit log of /ops actions
-- (issue 25). MINGUS_ADMIN_TOKEN stays as break-glass; its actions are audited as `break-glass`.

CREATE TABLE ops_operators (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- Shown in the audit log; lower-case so `Alice` and `alice` cannot be two people.
    name        text NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9][a-z0-9._@-]{0,63}$' AND name NOT IN ('break-glass', 'mingus-admin')),
    role        text NOT NULL CHECK (role IN ('viewer', 'support', 'admin')),
    -- SHA-256 of the operator's token (`mop_` + 256 random bits, shown once by mingus-admin).
    token_hash  bytea NOT NULL UNIQUE CHECK (octet_length(token_hash) = 32),
    created_at  timestamptz NOT NULL DEFAULT now(),
    disabled_at timestamptz
);

-- A dashboard sign-in. The cookie holds a random value; only its SHA-256 is stored, so a copy of this
-- table opens no session. Disabling the operator ends every session at the next request.
CREATE TABLE ops_sessions (
    token_hash  bytea PRIMARY KEY CHECK (octet_length(token_hash) = 32),
    operator_id uuid NOT NULL REFERENCES ops_operators (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX ops_sessions_expiry ON ops_sessions (expires_at);

CREATE TABLE ops_audit_log (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- The operator's name, or `break-glass` for MINGUS_ADMIN_TOKEN, or `mingus-admin` for the CLI.
    actor       text NOT NULL,
    operator_id uuid REFERENCES ops_operators (id),
    actor_role  text NOT NULL CHECK (actor_role IN ('viewer', 'support', 'admin')),
    action      text NOT NULL,
    target      text,
    before      jsonb,
    after       jsonb,
    outcome     text NOT NULL CHECK (outcome IN ('ok', 'failed')),
    request_id  text,
    client_ip   inet
);
CREATE INDEX ops_audit_log_at ON ops_audit_log (at);

-- Append-only for every role, the owner included: UPDATE, DELETE and TRUNCATE raise 42501. Pruning it
-- takes a deliberate `ALTER TABLE … DISABLE TRIGGER` by the owner, which is DDL and logged as such.
CREATE FUNCTION ops_audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ops_audit_log is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER ops_audit_log_no_change BEFORE UPDATE OR DELETE ON ops_audit_log
    FOR EACH ROW EXECUTE FUNCTION ops_audit_log_append_only();
CREATE TRIGGER ops_audit_log_no_truncate BEFORE TRUNCATE ON ops_audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION ops_audit_log_append_only();

-- And at the privilege level: the API role gets default privileges (SELECT, INSERT, UPDATE, DELETE on
-- the owner's new tables, see `mingus-admin create-roles`); on this table only INSERT and SELECT stay.
DO $$
DECLARE grantee_name text;
BEGIN
    FOR grantee_name IN
        SELECT DISTINCT pg_get_userbyid(acl.grantee)
        FROM pg_class c, aclexplode(c.relacl) acl
        WHERE c.oid = 'ops_audit_log'::regclass AND acl.grantee <> c.relowner AND acl.grantee <> 0
          AND acl.privilege_type IN ('UPDATE', 'DELETE', 'TRUNCATE')
    LOOP
        EXECUTE format('REVOKE UPDATE, DELETE, TRUNCATE ON ops_audit_log FROM %I', grantee_name);
    END LOOP;
END $$;
