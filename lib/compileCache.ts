/**
 * Imported first by every tool: Node's on-disk compile cache (Node ≥ 22.1; in NODE_COMPILE_CACHE,
 * else the OS temp folder) for every module loaded after it. Loading the Pulumi SDK parses about
 * 0.5 s of JavaScript at each start; from the cache it takes about half that. The program and
 * the dynamic provider, started by the engine, get NODE_COMPILE_CACHE from scripts/install-pulumi.sh.
 */
import * as nodeModule from "module";

(nodeModule as { enableCompileCache?: () => unknown }).enableCompileCache?.();
