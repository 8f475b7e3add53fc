/**
 * Imported first by every entry point (the program, the tools): Node's on-disk compile cache
 * (Node ≥ 22.1, in the OS temp folder) for every module loaded after it. Loading the Pulumi SDK
 * parses about 0.5 s of JavaScript at each start; from the cache it takes about half that.
 */
import * as nodeModule from "module";

(nodeModule as { enableCompileCache?: () => unknown }).enableCompileCache?.();
