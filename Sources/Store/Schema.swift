import GRDB

/// The versioned schema. Each migration runs once, in order, inside a transaction, and is recorded in GRDB's
/// `grdb_migrations` table. A shipped migration is never edited: changes come as new migrations appended here.
enum Schema {
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(sql: v1)
        }
        migrator.registerMigration("v2-jobs") { db in
            try db.execute(sql: v2Jobs)
        }
        migrator.registerMigration("v3-engine-drains") { db in
            try db.execute(sql: v3EngineDrains)
        }
        migrator.registerMigration("v4-roles") { db in
            try db.execute(sql: v4Roles)
        }
        migrator.registerMigration("v5-accounts") { db in
            try db.execute(sql: v5Accounts)
        }
        migrator.registerMigration("v6-engine-bindings") { db in
            try db.execute(sql: v6EngineBindings)
        }
        migrator.registerMigration("v7-access-penalties") { db in
            try db.execute(sql: v7AccessPenalties)
        }
        return migrator
    }

    /// The identifiers of the migrations this build knows, in order.
    static var knownMigrations: [String] { migrator.migrations }

    // Conventions: times are INTEGER milliseconds since 1970-01-01 UTC; hashes are 32-byte BLOBs (SHA-256),
    // except base-model and checkpoint hashes, which arrive as 64-character lower-case hex TEXT; money is
    // INTEGER micro-units. Tables are STRICT (SQLite >= 3.37).
    static let v1 = """
        CREATE TABLE contributor (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            display_name TEXT NOT NULL CHECK (length(display_name) BETWEEN 1 AND 100),
            token_hash BLOB NOT NULL UNIQUE CHECK (length(token_hash) = 32),
            created_at INTEGER NOT NULL
        ) STRICT;
        CREATE TRIGGER contributor_no_delete BEFORE DELETE ON contributor
        BEGIN SELECT RAISE(ABORT, 'contributors are never deleted'); END;
        CREATE TRIGGER contributor_immutable BEFORE UPDATE OF id, created_at ON contributor
        BEGIN SELECT RAISE(ABORT, 'contributor id and creation time are immutable'); END;

        CREATE TABLE datanet (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            name TEXT NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 64),
            summary TEXT NOT NULL,
            description TEXT NOT NULL,
            license TEXT NOT NULL CHECK (length(license) >= 1),
            owner_id INTEGER NOT NULL REFERENCES contributor(id),
            visibility TEXT NOT NULL CHECK (visibility IN ('public', 'private')),
            created_at INTEGER NOT NULL
        ) STRICT;
        CREATE TRIGGER datanet_no_delete BEFORE DELETE ON datanet
        BEGIN SELECT RAISE(ABORT, 'datanets are never deleted'); END;
        CREATE TRIGGER datanet_identity_immutable BEFORE UPDATE OF id, name, owner_id, created_at ON datanet
        BEGIN SELECT RAISE(ABORT, 'datanet id, name, owner and creation time are immutable'); END;

        CREATE TABLE datanet_tag (
            datanet_id INTEGER NOT NULL REFERENCES datanet(id),
            tag TEXT NOT NULL,
            PRIMARY KEY (datanet_id, tag)
        ) STRICT, WITHOUT ROWID;
        CREATE INDEX datanet_tag_by_tag ON datanet_tag(tag, datanet_id);

        CREATE TABLE record (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            datanet_id INTEGER NOT NULL REFERENCES datanet(id),
            contributor_id INTEGER NOT NULL REFERENCES contributor(id),
            kind TEXT NOT NULL CHECK (kind IN ('text', 'pair')),
            text TEXT,
            prompt TEXT,
            completion TEXT,
            byte_size INTEGER NOT NULL CHECK (byte_size >= 1),
            content_hash BLOB NOT NULL CHECK (length(content_hash) = 32),
            status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'approved', 'rejected')),
            created_at INTEGER NOT NULL,
            reviewed_at INTEGER,
            reviewed_by INTEGER REFERENCES contributor(id),
            review_note TEXT,
            UNIQUE (datanet_id, content_hash),
            CHECK ((kind = 'text' AND text IS NOT NULL AND prompt IS NULL AND completion IS NULL)
                OR (kind = 'pair' AND text IS NULL AND prompt IS NOT NULL AND completion IS NOT NULL)),
            CHECK ((status = 'pending') = (reviewed_at IS NULL))
        ) STRICT;
        CREATE INDEX record_by_datanet_status ON record(datanet_id, status, id);
        CREATE INDEX record_by_contributor ON record(contributor_id);
        CREATE TRIGGER record_content_immutable
        BEFORE UPDATE OF id, datanet_id, contributor_id, kind, text, prompt, completion, byte_size, content_hash,
            created_at ON record
        BEGIN SELECT RAISE(ABORT, 'record content is immutable'); END;
        CREATE TRIGGER record_reviewed_once
        BEFORE UPDATE OF status, reviewed_at, reviewed_by, review_note ON record
        WHEN OLD.status <> 'pending' OR NEW.status NOT IN ('approved', 'rejected')
        BEGIN SELECT RAISE(ABORT, 'a record is reviewed once, from pending to approved or rejected'); END;
        CREATE TRIGGER record_no_delete BEFORE DELETE ON record
        BEGIN SELECT RAISE(ABORT, 'records are never deleted'); END;

        CREATE TABLE record_flag (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            record_id INTEGER NOT NULL UNIQUE REFERENCES record(id),
            contributor_id INTEGER NOT NULL REFERENCES contributor(id),
            curator TEXT NOT NULL CHECK (length(curator) >= 1),
            reason TEXT NOT NULL,
            points INTEGER NOT NULL CHECK (points BETWEEN 1 AND 1000),
            created_at INTEGER NOT NULL
        ) STRICT;
        CREATE INDEX record_flag_by_contributor ON record_flag(contributor_id);
        CREATE TRIGGER record_flag_contributor BEFORE INSERT ON record_flag
        WHEN NEW.contributor_id IS NOT (SELECT contributor_id FROM record WHERE id = NEW.record_id)
        BEGIN SELECT RAISE(ABORT, 'a flag names the contributor of its record'); END;
        CREATE TRIGGER record_flag_no_update BEFORE UPDATE ON record_flag
        BEGIN SELECT RAISE(ABORT, 'flags are append-only'); END;
        CREATE TRIGGER record_flag_no_delete BEFORE DELETE ON record_flag
        BEGIN SELECT RAISE(ABORT, 'flags are append-only'); END;

        CREATE TABLE datanet_version (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            datanet_id INTEGER NOT NULL REFERENCES datanet(id),
            number INTEGER NOT NULL CHECK (number >= 1),
            record_count INTEGER NOT NULL CHECK (record_count >= 1),
            manifest_hash BLOB NOT NULL CHECK (length(manifest_hash) = 32),
            published_by INTEGER NOT NULL REFERENCES contributor(id),
            created_at INTEGER NOT NULL,
            UNIQUE (datanet_id, number)
        ) STRICT;
        CREATE TRIGGER datanet_version_numbering BEFORE INSERT ON datanet_version
        WHEN NEW.number IS NOT (SELECT coalesce(max(number), 0) + 1 FROM datanet_version
                                WHERE datanet_id = NEW.datanet_id)
        BEGIN SELECT RAISE(ABORT, 'versions are numbered 1, 2, 3, ... per datanet'); END;
        CREATE TRIGGER datanet_version_no_update BEFORE UPDATE ON datanet_version
        BEGIN SELECT RAISE(ABORT, 'published versions are immutable'); END;
        CREATE TRIGGER datanet_version_no_delete BEFORE DELETE ON datanet_version
        BEGIN SELECT RAISE(ABORT, 'published versions are immutable'); END;

        CREATE TABLE version_record (
            version_id INTEGER NOT NULL REFERENCES datanet_version(id),
            position INTEGER NOT NULL CHECK (position >= 0),
            record_id INTEGER NOT NULL REFERENCES record(id),
            PRIMARY KEY (version_id, position),
            UNIQUE (version_id, record_id)
        ) STRICT, WITHOUT ROWID;
        CREATE INDEX version_record_by_record ON version_record(record_id, version_id);
        CREATE TRIGGER version_record_sealed BEFORE INSERT ON version_record
        WHEN NEW.position IS NOT (SELECT count(*) FROM version_record WHERE version_id = NEW.version_id)
          OR NEW.position >= (SELECT record_count FROM datanet_version WHERE id = NEW.version_id)
          OR NOT EXISTS (SELECT 1 FROM record r JOIN datanet_version v ON v.id = NEW.version_id
                         WHERE r.id = NEW.record_id AND r.datanet_id = v.datanet_id AND r.status = 'approved')
        BEGIN SELECT RAISE(ABORT, 'a version holds exactly its approved records, in order, and is then sealed'); END;
        CREATE TRIGGER version_record_no_update BEFORE UPDATE ON version_record
        BEGIN SELECT RAISE(ABORT, 'published versions are immutable'); END;
        CREATE TRIGGER version_record_no_delete BEFORE DELETE ON version_record
        BEGIN SELECT RAISE(ABORT, 'published versions are immutable'); END;

        CREATE TABLE adapter (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
            owner_id INTEGER NOT NULL REFERENCES contributor(id),
            base_model_hash TEXT NOT NULL CHECK (length(base_model_hash) = 64),
            training_version_count INTEGER NOT NULL CHECK (training_version_count >= 1),
            gradient_index_location TEXT,
            created_at INTEGER NOT NULL
        ) STRICT;
        CREATE TRIGGER adapter_provenance_immutable
        BEFORE UPDATE OF id, name, owner_id, base_model_hash, training_version_count, created_at ON adapter
        BEGIN SELECT RAISE(ABORT, 'adapter provenance is immutable'); END;
        CREATE TRIGGER adapter_no_delete BEFORE DELETE ON adapter
        BEGIN SELECT RAISE(ABORT, 'adapters are never deleted'); END;

        CREATE TABLE adapter_training_version (
            adapter_id INTEGER NOT NULL REFERENCES adapter(id),
            version_id INTEGER NOT NULL REFERENCES datanet_version(id),
            PRIMARY KEY (adapter_id, version_id)
        ) STRICT, WITHOUT ROWID;
        CREATE INDEX adapter_training_version_by_version ON adapter_training_version(version_id);
        CREATE TRIGGER adapter_training_version_sealed BEFORE INSERT ON adapter_training_version
        WHEN (SELECT count(*) FROM adapter_training_version WHERE adapter_id = NEW.adapter_id)
             >= (SELECT training_version_count FROM adapter WHERE id = NEW.adapter_id)
        BEGIN SELECT RAISE(ABORT, 'adapter provenance is immutable'); END;
        CREATE TRIGGER adapter_training_version_no_update BEFORE UPDATE ON adapter_training_version
        BEGIN SELECT RAISE(ABORT, 'adapter provenance is immutable'); END;
        CREATE TRIGGER adapter_training_version_no_delete BEFORE DELETE ON adapter_training_version
        BEGIN SELECT RAISE(ABORT, 'adapter provenance is immutable'); END;

        CREATE TABLE adapter_hyperparameter (
            adapter_id INTEGER NOT NULL REFERENCES adapter(id),
            name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
            type TEXT NOT NULL CHECK (type IN ('int', 'double', 'string', 'bool')),
            value ANY NOT NULL,
            PRIMARY KEY (adapter_id, name)
        ) STRICT, WITHOUT ROWID;
        CREATE TRIGGER adapter_hyperparameter_no_update BEFORE UPDATE ON adapter_hyperparameter
        BEGIN SELECT RAISE(ABORT, 'adapter provenance is immutable'); END;
        CREATE TRIGGER adapter_hyperparameter_no_delete BEFORE DELETE ON adapter_hyperparameter
        BEGIN SELECT RAISE(ABORT, 'adapter provenance is immutable'); END;

        CREATE TABLE adapter_checkpoint (
            adapter_id INTEGER NOT NULL REFERENCES adapter(id),
            step INTEGER NOT NULL CHECK (step >= 0),
            location TEXT NOT NULL CHECK (length(location) >= 1),
            content_hash TEXT NOT NULL CHECK (length(content_hash) = 64),
            created_at INTEGER NOT NULL,
            PRIMARY KEY (adapter_id, step)
        ) STRICT, WITHOUT ROWID;
        CREATE TRIGGER adapter_checkpoint_no_update BEFORE UPDATE ON adapter_checkpoint
        BEGIN SELECT RAISE(ABORT, 'checkpoints are append-only'); END;
        CREATE TRIGGER adapter_checkpoint_no_delete BEFORE DELETE ON adapter_checkpoint
        BEGIN SELECT RAISE(ABORT, 'checkpoints are append-only'); END;

        CREATE TABLE adapter_metric (
            adapter_id INTEGER NOT NULL REFERENCES adapter(id),
            step INTEGER NOT NULL CHECK (step >= 0),
            name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
            value REAL NOT NULL,
            created_at INTEGER NOT NULL,
            PRIMARY KEY (adapter_id, step, name)
        ) STRICT, WITHOUT ROWID;
        CREATE TRIGGER adapter_metric_no_update BEFORE UPDATE ON adapter_metric
        BEGIN SELECT RAISE(ABORT, 'metrics are append-only'); END;
        CREATE TRIGGER adapter_metric_no_delete BEFORE DELETE ON adapter_metric
        BEGIN SELECT RAISE(ABORT, 'metrics are append-only'); END;

        CREATE TABLE inference (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            request_id TEXT NOT NULL UNIQUE CHECK (length(request_id) BETWEEN 1 AND 200),
            adapter_id INTEGER NOT NULL REFERENCES adapter(id),
            prompt_output_hash BLOB NOT NULL CHECK (length(prompt_output_hash) = 32),
            method TEXT NOT NULL CHECK (length(method) BETWEEN 1 AND 64),
            fee INTEGER NOT NULL CHECK (fee >= 0),
            contributors_bp INTEGER NOT NULL CHECK (contributors_bp >= 0),
            owner_bp INTEGER NOT NULL CHECK (owner_bp >= 0),
            protocol_bp INTEGER NOT NULL CHECK (protocol_bp >= 0),
            penalty_threshold INTEGER NOT NULL CHECK (penalty_threshold >= 0),
            penalty_keep_bp INTEGER NOT NULL CHECK (penalty_keep_bp BETWEEN 0 AND 10000),
            created_at INTEGER NOT NULL,
            CHECK (contributors_bp + owner_bp + protocol_bp = 10000)
        ) STRICT;
        CREATE INDEX inference_by_adapter ON inference(adapter_id);
        CREATE TRIGGER inference_no_update BEFORE UPDATE ON inference
        BEGIN SELECT RAISE(ABORT, 'inference records are immutable'); END;
        CREATE TRIGGER inference_no_delete BEFORE DELETE ON inference
        BEGIN SELECT RAISE(ABORT, 'inference records are immutable'); END;

        CREATE TABLE inference_record_share (
            inference_id INTEGER NOT NULL REFERENCES inference(id),
            record_id INTEGER NOT NULL REFERENCES record(id),
            share REAL NOT NULL CHECK (share >= 0 AND share <= 1),
            PRIMARY KEY (inference_id, record_id)
        ) STRICT, WITHOUT ROWID;
        CREATE INDEX inference_record_share_by_record ON inference_record_share(record_id);
        CREATE TABLE inference_contributor_share (
            inference_id INTEGER NOT NULL REFERENCES inference(id),
            contributor_id INTEGER NOT NULL REFERENCES contributor(id),
            share REAL NOT NULL CHECK (share >= 0 AND share <= 1),
            gross_amount INTEGER NOT NULL CHECK (gross_amount >= 0),
            paid_amount INTEGER NOT NULL CHECK (paid_amount BETWEEN 0 AND gross_amount),
            penalty_points INTEGER NOT NULL CHECK (penalty_points >= 0),
            PRIMARY KEY (inference_id, contributor_id)
        ) STRICT, WITHOUT ROWID;
        CREATE INDEX inference_contributor_share_by_contributor ON inference_contributor_share(contributor_id);
        CREATE TABLE inference_datanet_share (
            inference_id INTEGER NOT NULL REFERENCES inference(id),
            datanet_id INTEGER NOT NULL REFERENCES datanet(id),
            share REAL NOT NULL CHECK (share >= 0 AND share <= 1),
            PRIMARY KEY (inference_id, datanet_id)
        ) STRICT, WITHOUT ROWID;
        CREATE INDEX inference_datanet_share_by_datanet ON inference_datanet_share(datanet_id);
        CREATE TRIGGER inference_record_share_no_update BEFORE UPDATE ON inference_record_share
        BEGIN SELECT RAISE(ABORT, 'inference records are immutable'); END;
        CREATE TRIGGER inference_record_share_no_delete BEFORE DELETE ON inference_record_share
        BEGIN SELECT RAISE(ABORT, 'inference records are immutable'); END;
        CREATE TRIGGER inference_contributor_share_no_update BEFORE UPDATE ON inference_contributor_share
        BEGIN SELECT RAISE(ABORT, 'inference records are immutable'); END;
        CREATE TRIGGER inference_contributor_share_no_delete BEFORE DELETE ON inference_contributor_share
        BEGIN SELECT RAISE(ABORT, 'inference records are immutable'); END;
        CREATE TRIGGER inference_datanet_share_no_update BEFORE UPDATE ON inference_datanet_share
        BEGIN SELECT RAISE(ABORT, 'inference records are immutable'); END;
        CREATE TRIGGER inference_datanet_share_no_delete BEFORE DELETE ON inference_datanet_share
        BEGIN SELECT RAISE(ABORT, 'inference records are immutable'); END;

        CREATE TABLE ledger_entry (
            seq INTEGER PRIMARY KEY CHECK (seq >= 1),
            created_at INTEGER NOT NULL,
            kind TEXT NOT NULL CHECK (length(kind) BETWEEN 1 AND 255),
            account TEXT NOT NULL CHECK (account IN ('protocol', 'contributor')),
            contributor_id INTEGER REFERENCES contributor(id),
            amount INTEGER NOT NULL CHECK (amount >= 0),
            inference_id INTEGER REFERENCES inference(id),
            subject_contributor_id INTEGER REFERENCES contributor(id),
            memo TEXT NOT NULL,
            prev_hash BLOB NOT NULL CHECK (length(prev_hash) = 32),
            hash BLOB NOT NULL CHECK (length(hash) = 32),
            CHECK ((account = 'protocol') = (contributor_id IS NULL))
        ) STRICT;
        CREATE INDEX ledger_entry_by_contributor ON ledger_entry(contributor_id);
        CREATE INDEX ledger_entry_by_inference ON ledger_entry(inference_id);
        CREATE TRIGGER ledger_entry_extends_chain BEFORE INSERT ON ledger_entry
        WHEN NEW.seq IS NOT (SELECT coalesce(max(seq), 0) + 1 FROM ledger_entry)
          OR NEW.prev_hash IS NOT coalesce((SELECT hash FROM ledger_entry ORDER BY seq DESC LIMIT 1), zeroblob(32))
        BEGIN SELECT RAISE(ABORT, 'a ledger entry must extend the chain: seq = last seq + 1, prev_hash = last hash'); END;
        CREATE TRIGGER ledger_entry_no_update BEFORE UPDATE ON ledger_entry
        BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END;
        CREATE TRIGGER ledger_entry_no_delete BEFORE DELETE ON ledger_entry
        BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END;
        """

    /// The coordinator's durable job queue. Jobs change state; their events are append-only.
    static let v2Jobs = """
        CREATE TABLE job (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            kind TEXT NOT NULL CHECK (kind IN ('train', 'index', 'evaluate')),
            specification BLOB NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
            submitted_by INTEGER NOT NULL REFERENCES contributor(id),
            parent_id INTEGER REFERENCES job(id),
            attempt INTEGER NOT NULL CHECK (attempt >= 0),
            max_attempts INTEGER NOT NULL CHECK (max_attempts >= 1),
            engine TEXT,
            lease_expires_at INTEGER,
            not_before INTEGER NOT NULL,
            checkpoint TEXT,
            cancel_requested INTEGER NOT NULL DEFAULT 0 CHECK (cancel_requested IN (0, 1)),
            result BLOB,
            error TEXT,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL,
            CHECK ((state = 'running') = (lease_expires_at IS NOT NULL)),
            CHECK (attempt <= max_attempts)
        ) STRICT;
        CREATE INDEX job_by_state ON job(state, not_before, id);
        CREATE INDEX job_by_engine ON job(engine) WHERE state = 'running';
        CREATE TRIGGER job_no_delete BEFORE DELETE ON job
        BEGIN SELECT RAISE(ABORT, 'jobs are never deleted'); END;
        CREATE TRIGGER job_identity_immutable BEFORE UPDATE OF id, kind, specification, submitted_by, parent_id,
            created_at ON job
        BEGIN SELECT RAISE(ABORT, 'a job''s identity and specification are immutable'); END;
        CREATE TRIGGER job_final_state_is_final BEFORE UPDATE ON job
        WHEN OLD.state IN ('succeeded', 'failed', 'cancelled')
        BEGIN SELECT RAISE(ABORT, 'a finished job never changes'); END;

        CREATE TABLE job_event (
            sequence INTEGER PRIMARY KEY AUTOINCREMENT,
            job_id INTEGER NOT NULL REFERENCES job(id),
            kind TEXT NOT NULL CHECK (kind IN ('queued', 'started', 'progress', 'checkpoint', 'retrying',
                                               'cancelling', 'done', 'failed', 'cancelled')),
            attempt INTEGER NOT NULL,
            detail BLOB NOT NULL,
            created_at INTEGER NOT NULL
        ) STRICT;
        CREATE INDEX job_event_by_job ON job_event(job_id, sequence);
        CREATE TRIGGER job_event_no_update BEFORE UPDATE ON job_event
        BEGIN SELECT RAISE(ABORT, 'job events are append-only'); END;
        CREATE TRIGGER job_event_no_delete BEFORE DELETE ON job_event
        BEGIN SELECT RAISE(ABORT, 'job events are append-only'); END;
        """

    /// Engines their operators took out of dispatch, by name: a drain outlasts the engine's re-registration and
    /// the coordinator's restart. Resuming deletes the row.
    static let v3EngineDrains = """
        CREATE TABLE engine_drain (
            engine TEXT PRIMARY KEY CHECK (length(engine) BETWEEN 1 AND 200),
            drained_by INTEGER NOT NULL REFERENCES contributor(id),
            drained_at INTEGER NOT NULL
        ) STRICT, WITHOUT ROWID;
        """

    /// Every contributor has one role: `contributor` (signed up, or added by an operator), `operator` (holds the data
    /// directory: deposits, engine credentials, acting on any object) or `engine` (an engine's credential: registers
    /// and heartbeats engines). Roles are set only through the data directory, never over the wire.
    static let v4Roles = """
        ALTER TABLE contributor ADD COLUMN role TEXT NOT NULL DEFAULT 'contributor'
            CHECK (role IN ('contributor', 'operator', 'engine'));
        """

    /// Accounts that balance (docs/STORE.md, "Accounts"). Money enters only by an operator's `deposit` entry; a paid
    /// inference's `fee_payment` entry debits its payer by the fee its credits add up to. `account_balance` holds each
    /// account's balance, kept in the transaction that appends the entries and never negative, so a balance is read
    /// without summing the ledger (a sum over a long history could overflow; a balance cannot: see ``MoneyBounds``).
    /// `ledger_accounts_epoch` remembers where the ledger stood when accounts began: fees recorded before it were
    /// credited without a payer, and conservation counts them as minted before accounts.
    static let v5Accounts = """
        CREATE TABLE account_balance (
            account TEXT NOT NULL CHECK (account IN ('protocol', 'contributor')),
            contributor_id INTEGER NOT NULL,
            balance INTEGER NOT NULL CHECK (balance BETWEEN 0 AND 1000000000000000000),
            PRIMARY KEY (account, contributor_id),
            CHECK ((account = 'protocol') = (contributor_id = 0))
        ) STRICT, WITHOUT ROWID;
        CREATE TRIGGER account_balance_no_delete BEFORE DELETE ON account_balance
        BEGIN SELECT RAISE(ABORT, 'accounts are never deleted'); END;
        INSERT INTO account_balance (account, contributor_id, balance)
            SELECT account, coalesce(contributor_id, 0), sum(amount) FROM ledger_entry
            GROUP BY account, contributor_id;

        CREATE TABLE ledger_accounts_epoch (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            first_seq INTEGER NOT NULL CHECK (first_seq >= 1)
        ) STRICT;
        INSERT INTO ledger_accounts_epoch (id, first_seq) SELECT 1, coalesce(max(seq), 0) + 1 FROM ledger_entry;
        CREATE TRIGGER ledger_accounts_epoch_no_update BEFORE UPDATE ON ledger_accounts_epoch
        BEGIN SELECT RAISE(ABORT, 'the accounts epoch is fixed'); END;
        CREATE TRIGGER ledger_accounts_epoch_no_delete BEFORE DELETE ON ledger_accounts_epoch
        BEGIN SELECT RAISE(ABORT, 'the accounts epoch is fixed'); END;

        CREATE TABLE deposit_request (
            operator_id INTEGER NOT NULL REFERENCES contributor(id),
            idempotency_key TEXT NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 200),
            ledger_seq INTEGER NOT NULL UNIQUE REFERENCES ledger_entry(seq),
            PRIMARY KEY (operator_id, idempotency_key)
        ) STRICT, WITHOUT ROWID;
        CREATE TRIGGER deposit_request_no_update BEFORE UPDATE ON deposit_request
        BEGIN SELECT RAISE(ABORT, 'deposit requests are append-only'); END;
        CREATE TRIGGER deposit_request_no_delete BEFORE DELETE ON deposit_request
        BEGIN SELECT RAISE(ABORT, 'deposit requests are append-only'); END;

        ALTER TABLE inference ADD COLUMN payer_id INTEGER REFERENCES contributor(id);
        ALTER TABLE inference ADD COLUMN idempotency_key TEXT
            CHECK (idempotency_key IS NULL OR length(idempotency_key) BETWEEN 1 AND 200);
        CREATE UNIQUE INDEX inference_by_payer_key ON inference(payer_id, idempotency_key)
            WHERE idempotency_key IS NOT NULL;
        CREATE TRIGGER inference_fee_bounded BEFORE INSERT ON inference
        WHEN NEW.fee > 1000000000000000 OR (NEW.fee > 0 AND NEW.payer_id IS NULL)
          OR (NEW.idempotency_key IS NOT NULL AND NEW.payer_id IS NULL)
        BEGIN SELECT RAISE(ABORT, 'a fee is at most 10^15 micro-units and is paid by a payer'); END;
        """

    /// Engine names bound to the credential that first registered them: another credential cannot register an engine
    /// under a bound name (and so cannot drain or heartbeat it), across coordinator restarts. Bindings are never
    /// deleted over the wire.
    static let v6EngineBindings = """
        CREATE TABLE engine_binding (
            engine TEXT PRIMARY KEY CHECK (length(engine) BETWEEN 1 AND 200),
            contributor_id INTEGER NOT NULL REFERENCES contributor(id),
            bound_at INTEGER NOT NULL
        ) STRICT, WITHOUT ROWID;
        CREATE INDEX engine_binding_by_contributor ON engine_binding(contributor_id);
        """

    /// Read grants on datanets (who besides the owner may read a private one, and train on it), and penalties
    /// scoped to the adapter whose curation earned them: a penalty cuts payouts on that adapter's inferences only.
    /// `record_flag` (unscoped, from before) is kept as history and no longer cuts any payout.
    static let v7AccessPenalties = """
        CREATE TABLE datanet_grant (
            datanet_id INTEGER NOT NULL REFERENCES datanet(id),
            grantee_id INTEGER NOT NULL REFERENCES contributor(id),
            granted_by INTEGER NOT NULL REFERENCES contributor(id),
            granted_at INTEGER NOT NULL,
            PRIMARY KEY (datanet_id, grantee_id)
        ) STRICT, WITHOUT ROWID;
        CREATE INDEX datanet_grant_by_grantee ON datanet_grant(grantee_id);

        CREATE TABLE record_penalty (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            record_id INTEGER NOT NULL REFERENCES record(id),
            contributor_id INTEGER NOT NULL REFERENCES contributor(id),
            adapter_id INTEGER NOT NULL REFERENCES adapter(id),
            imposed_by INTEGER NOT NULL REFERENCES contributor(id),
            method TEXT NOT NULL CHECK (length(method) BETWEEN 1 AND 64),
            evaluation_version_id INTEGER NOT NULL REFERENCES datanet_version(id),
            score REAL NOT NULL,
            points INTEGER NOT NULL CHECK (points BETWEEN 1 AND 1000),
            ledger_seq INTEGER NOT NULL UNIQUE REFERENCES ledger_entry(seq),
            created_at INTEGER NOT NULL,
            UNIQUE (record_id, adapter_id)
        ) STRICT;
        CREATE INDEX record_penalty_by_contributor ON record_penalty(contributor_id, adapter_id);
        CREATE TRIGGER record_penalty_contributor BEFORE INSERT ON record_penalty
        WHEN NEW.contributor_id IS NOT (SELECT contributor_id FROM record WHERE id = NEW.record_id)
        BEGIN SELECT RAISE(ABORT, 'a penalty names the contributor of its record'); END;
        CREATE TRIGGER record_penalty_no_update BEFORE UPDATE ON record_penalty
        BEGIN SELECT RAISE(ABORT, 'penalties are append-only'); END;
        CREATE TRIGGER record_penalty_no_delete BEFORE DELETE ON record_penalty
        BEGIN SELECT RAISE(ABORT, 'penalties are append-only'); END;
        """
}
