/**
 * Pure builders of the shell scripts one deploy runs on the server, one file per server artefact:
 * values in, script text out, every interpolated value through `quote`. No secret is ever part of
 * a script's text: secrets arrive on standard input (a failing command's text is printed in the error).
 */
export * from "./layout";
export * from "./lock";
export * from "./backup";
export * from "./configBackup";
export * from "./release";
export * from "./slot";
export * from "./nginx";
export { type CutoverTarget, cutoverCheckScript, cutoverScript, servingScript, switchBackScript } from "./cutover";
export * from "./loadBalancer";
export * from "./rollbackSwitch";
export * from "./journal";
export * from "./workers";
