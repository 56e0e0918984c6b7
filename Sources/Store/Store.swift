/// Tributary's embedded store (SQLite through GRDB): datanets, adapters, inference records, the ledger.
public enum StoreModule {}
