/** Database restore for `rollback --restore-db`: which backup (plan) and the remote scripts. */
export * from "./plan";
export * from "./scripts";
