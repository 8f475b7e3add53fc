import * as pulumi from "@pulumi/pulumi";
import { DeployConfig } from "../lib/config";
import { lockScript, preflightScript } from "../lib/scripts";
import { Command, SshConnection } from "./command";

export interface ServerArgs {
  /** The validated deploy config. */
  readonly config: DeployConfig;
  /** SSH private key of the deploy user (a Pulumi secret). */
  readonly privateKey: pulumi.Input<string>;
  /** What this deploy brings (app → SHA); a change re-runs preflight and takes the lock. */
  readonly refs: Record<string, string>;
}

/**
 * The target server: how to reach it, preflight checks before anything changes, and the
 * server-side deploy lock (released by the DeployRecord at the end).
 */
export class Server extends pulumi.ComponentResource {
  readonly connection: pulumi.Output<SshConnection>;
  /** Depend on this to run after preflight and the lock. */
  readonly locked: Command;

  constructor(name: string, args: ServerArgs, opts?: pulumi.ComponentResourceOptions) {
    super("nostromo:server:Server", name, {}, opts);
    const { server, stack } = args.config;
    this.connection = pulumi.secret(
      pulumi.output(args.privateKey).apply((privateKey) => ({
        host: server.host,
        port: server.port,
        user: server.user,
        privateKey,
        hostKey: server.hostKey,
        insecureIgnoreHostKey: server.insecureIgnoreHostKey,
      })),
    );
    const refs = JSON.stringify(args.refs);
    const preflight = new Command(
      `${name}-preflight`,
      { connection: this.connection, create: preflightScript(args.config), triggers: [refs] },
      { parent: this },
    );
    this.locked = new Command(
      `${name}-lock`,
      { connection: this.connection, create: lockScript(server, stack, refs), triggers: [refs] },
      { parent: this, dependsOn: [preflight] },
    );
    this.registerOutputs({ connection: this.connection });
  }
}
