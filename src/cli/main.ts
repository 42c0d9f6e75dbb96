import { Command } from 'commander';
import { registerMediaCommands } from '../media/cli.js';
import { StreamflowError } from '../node/errors.js';
import { registerTranscoderCommand } from '../transcoder/cli.js';
import { registerChainCommands } from './chain-commands.js';
import { registerDemoCommand, registerNodeCommands } from './node-commands.js';

export function buildProgram(): Command {
  const program = new Command('streamflow')
    .description('Streamflow: decentralized live-video transcoding (Livepeer Streamflow protocol)')
    .version('0.1.0')
    .showHelpAfterError();
  registerChainCommands(program);
  registerMediaCommands(program);
  registerTranscoderCommand(program);
  registerNodeCommands(program);
  registerDemoCommand(program);
  return program;
}

/** Runs the CLI; user errors print their message and exit 1 without a stack trace. */
export async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (err) {
    if (err instanceof StreamflowError) {
      process.stderr.write(`error [${err.code}]: ${err.message}\n`);
    } else {
      process.stderr.write(`error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    }
    process.exitCode = 1;
  }
}
