import * as pulumi from "@pulumi/pulumi";
import { nginxSiteScript } from "../lib/scripts";
import { COMPONENT_TYPE, STEP } from "../lib/steps";
import { Command } from "./command";
import { ServerTarget, serverStep } from "./step";

export interface NginxSiteArgs {
  readonly target: ServerTarget;
}

/** The nginx site serving the system (rewritten only when its text changes). */
export class NginxSite extends pulumi.ComponentResource {
  readonly step: Command;

  constructor(name: string, args: NginxSiteArgs, opts?: pulumi.ComponentResourceOptions) {
    super(COMPONENT_TYPE.nginxSite, name, {}, opts);
    this.step = serverStep(this, name, args.target, STEP.nginxSite, { create: nginxSiteScript(args.target.config) }, opts?.dependsOn);
    this.registerOutputs({});
  }
}
