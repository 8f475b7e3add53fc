/** Restores: the database for `rollback --restore-db` (which backup, the remote scripts), the config archives for `restore-config`. */
export * from "./plan";
export * from "./scripts";
export * from "./config";
