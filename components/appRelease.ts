import * as pulumi from "@pulumi/pulumi";
import { AppConfig, DeployConfig } from "../lib/config";
import { releaseScript } from "../lib/scripts";
import { Command, SshConnection } from "./command";

export interface AppReleaseArgs {
  readonly config: DeployConfig;
  readonly app: AppConfig;
  readonly connection: pulumi.Input<SshConnection>;
  /** The commit the app's ref resolved to. */
  readonly sha: string;
  /** The app's .env (secret): written 0600 into shared/<app>/ and linked into the release. */
  readonly envFile: pulumi.Input<string>;
}

/** releases/<app>/<sha>: fetched, linked to shared files, installed and built (once per SHA). */
export class AppRelease extends pulumi.ComponentResource {
  readonly step: Command;
  /** Commits since the release that served before (`<short sha> <subject>`). */
  readonly changelog: pulumi.Output<string[]>;
  readonly previousSha: pulumi.Output<string>;

  constructor(name: string, args: AppReleaseArgs, opts?: pulumi.ComponentResourceOptions) {
    super("nostromo:appRelease:AppRelease", name, {}, opts);
    this.step = new Command(
      `${name}-build`,
      {
        connection: args.connection,
        create: releaseScript(args.config, args.app, args.sha),
        stdin: args.envFile,
        triggers: [args.sha],
      },
      { parent: this, dependsOn: opts?.dependsOn },
    );
    const lines = this.step.stdout.apply((out) => out.split("\n"));
    this.changelog = lines.apply((ls) => ls.filter((l) => l.startsWith("changelog: ")).map((l) => l.slice("changelog: ".length)));
    this.previousSha = lines.apply((ls) => (ls.find((l) => l.startsWith("previous=")) ?? "previous=none").slice("previous=".length));
    this.registerOutputs({ changelog: this.changelog, previousSha: this.previousSha });
  }
}
