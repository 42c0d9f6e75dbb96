import { readFile } from 'node:fs/promises';
import { type Command, InvalidArgumentError } from 'commander';
import { type Hex, parseEther } from 'viem';
import { createStreamKey } from '../broadcaster/ingest-auth.js';
import { BroadcasterNode } from '../broadcaster/node.js';
import { accountFromPrivateKey, connectChain, withSigner } from '../chain/client.js';
import { readManifest } from '../chain/manifest.js';
import { runDemo } from '../demo/demo.js';
import { resolveMediaTools } from '../media/ffmpeg.js';
import { resolveProfiles } from '../media/profiles.js';
import { createLogger } from '../node/logger.js';
import { OrchestratorNode } from '../orchestrator/node.js';
import { parseBigInt, parseNonNegativeInt } from './chain-commands.js';
import { shutdownSignal, untilAborted } from './signals.js';

function out(line = ''): void {
  process.stdout.write(`${line}\n`);
}

/** `1.5` or `1.5eth` → wei; `123wei` → 123. */
export function parseEth(value: string): bigint {
  const m = /^(\d+(?:\.\d+)?)(eth|wei)?$/i.exec(value.trim());
  if (!m) throw new InvalidArgumentError('expected an amount such as 0.5 (ETH) or 1000wei');
  return m[2]?.toLowerCase() === 'wei' ? BigInt(m[1] as string) : parseEther(m[1] as string);
}

function parseList(value: string): string[] {
  return value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

/** `eu-west=1200,us-east=900` → { 'eu-west': 1200n, ... } */
function parseRegionPrices(value: string): Record<string, bigint> {
  const out: Record<string, bigint> = {};
  for (const part of parseList(value)) {
    const [region, price] = part.split('=');
    if (!region || !price || !/^\d+$/.test(price)) {
      throw new InvalidArgumentError('expected region=weiPerPixel pairs, e.g. eu-west=1200,us-east=900');
    }
    out[region] = BigInt(price);
  }
  return out;
}

async function signerFrom(opts: { rpc: string; keyFile: string }) {
  const key = (await readFile(opts.keyFile, 'utf8')).trim();
  const account = accountFromPrivateKey(key);
  const conn = withSigner(await connectChain(opts.rpc), account);
  return { conn, privateKey: (key.startsWith('0x') ? key : `0x${key}`) as Hex };
}

export function registerNodeCommands(program: Command): void {
  program
    .command('orchestrator')
    .description(
      'run an orchestrator: register on chain, sell transcoding for tickets, call reward() each round',
    )
    .requiredOption('--rpc <url>', 'JSON-RPC URL of the chain')
    .requiredOption('--manifest <file>', 'deployment manifest')
    .requiredOption('--key-file <file>', "file holding the orchestrator's private key (hex)")
    .requiredOption('--data-dir <dir>', 'where tickets, sessions and the TLS certificate are kept')
    .requiredOption('--price <weiPerPixel>', 'price, wei per output pixel', parseBigInt)
    .option('--region-prices <list>', 'per-region prices, e.g. eu-west=1200,us-east=900', parseRegionPrices)
    .option('--host <host>', 'RPC interface', '127.0.0.1')
    .option('--port <port>', 'RPC port (0 = a free one)', parseNonNegativeInt, 8935)
    .option('--tls <mode>', "'off', 'self-signed', or CERT.pem:KEY.pem", 'off')
    .option('--service-uri <uri>', 'URI written to the ServiceRegistry (default: the server URL)')
    .option('--services <list>', 'services offered', parseList, ['transcode/h264'])
    .option('--regions <list>', 'regions served', parseList, [])
    .option(
      '--bond <lpt>',
      'self-bonded stake to reach at start, LPT (bonds only what is missing, e.g. 1000)',
    )
    .option('--reward-cut <ppm>', 'reward cut, parts per million', parseBigInt)
    .option('--fee-share <ppm>', 'fee share to delegators, parts per million', parseBigInt)
    .option('--no-register', 'skip on-chain registration (already set up)')
    .option(
      '--local-capacity <n>',
      'segments its own ffmpeg transcodes at once (0 = remote only)',
      parseNonNegativeInt,
      1,
    )
    .option(
      '--max-segments-per-sender <n>',
      'segments one broadcaster may have in work at once; more get OrchestratorBusy (default 2)',
      parseNonNegativeInt,
    )
    .option(
      '--transcoder-secret <s>',
      'secret remote transcoders register with (or STREAMFLOW_TRANSCODER_SECRET)',
    )
    .option(
      '--metrics-port <port>',
      'serve GET /metrics (Prometheus) and GET /status (JSON) on this port',
      parseNonNegativeInt,
    )
    .action(async (opts) => {
      const logger = createLogger();
      const signal = shutdownSignal();
      const { conn } = await signerFrom(opts);
      const manifest = await readManifest(opts.manifest);
      const tls =
        opts.tls === 'off' || opts.tls === 'self-signed'
          ? opts.tls
          : (() => {
              const [certPath, keyPath] = String(opts.tls).split(':');
              if (!certPath || !keyPath) throw new InvalidArgumentError('--tls CERT.pem:KEY.pem');
              return { certPath, keyPath };
            })();
      const node = new OrchestratorNode(
        {
          dataDir: opts.dataDir,
          host: opts.host,
          port: opts.port,
          tls,
          ...(opts.serviceUri ? { serviceUri: opts.serviceUri } : {}),
          pricePerPixel: opts.price,
          ...(opts.regionPrices ? { regionPrices: opts.regionPrices } : {}),
          services: opts.services,
          regions: opts.regions,
          registration:
            opts.register === false
              ? false
              : {
                  ...(opts.bond ? { bond: parseEther(String(opts.bond)) } : {}),
                  ...(opts.rewardCut !== undefined ? { rewardCut: opts.rewardCut } : {}),
                  ...(opts.feeShare !== undefined ? { feeShare: opts.feeShare } : {}),
                },
          ...(opts.metricsPort !== undefined ? { metricsPort: opts.metricsPort } : {}),
          ...(opts.maxSegmentsPerSender ? { jobs: { maxSegmentsPerSender: opts.maxSegmentsPerSender } } : {}),
          pool: {
            localCapacity: opts.localCapacity,
            secret: opts.transcoderSecret ?? process.env.STREAMFLOW_TRANSCODER_SECRET,
          },
        },
        { conn, manifest, logger, tools: resolveMediaTools() },
      );
      await node.start(signal);
      out(`orchestrator ${node.address} serving ${node.url}; Ctrl-C to stop`);
      if (node.statusUrl) out(`  status:  ${node.statusUrl}/status   metrics: ${node.statusUrl}/metrics`);
      await untilAborted(signal);
      await node.stop();
    });

  const broadcaster = program
    .command('broadcaster')
    .description(
      'run a broadcaster: ingest (RTMP, HTTP push, file), pay orchestrators with tickets, serve HLS',
    )
    // Checked in the action rather than with requiredOption: commander would demand them of `broadcaster keys` too.
    .option('--rpc <url>', 'JSON-RPC URL of the chain (required)')
    .option('--manifest <file>', 'deployment manifest (required)')
    .option('--key-file <file>', "file holding the broadcaster's private key (hex) (required)")
    .option('--profiles <list>', 'renditions, preset names or a JSON file', '480p30,360p30,240p30')
    .option('--orchestrators <urls>', 'static orchestrator URLs instead of on-chain discovery', parseList)
    .option('--service <name>', 'service asked for', 'transcode/h264')
    .option('--region <name>', 'region asked for (default: any)', '')
    .option('--min-stake <lpt>', 'least stake an orchestrator needs, LPT', '0')
    .option('--max-price <weiPerPixel>', 'highest price accepted, wei per pixel', parseBigInt)
    .option('--redundancy <k>', 'orchestrators each segment is sent to at once', parseNonNegativeInt, 1)
    .option('--deposit <eth>', 'top the TicketBroker deposit up to this at start', parseEth)
    .option('--reserve <eth>', 'top the TicketBroker reserve up to this at start', parseEth)
    .option('--host <host>', 'interface for HTTP and RTMP', '127.0.0.1')
    .option('--http-port <port>', 'HLS/push/status port', parseNonNegativeInt, 8080)
    .option('--rtmp-port <port>', 'RTMP ingest port', parseNonNegativeInt, 1935)
    .option('--input <file>', 'also ingest this file or URL (as stream "file", at its native rate)')
    .option(
      '--stream-keys <file>',
      'accept a publish only with its stream key from this file (see `broadcaster keys create`)',
    )
    .option(
      '--auth-webhook <url>',
      'ask this URL about every new stream (POST {stream,key,remoteAddress,protocol}; 2xx accepts)',
    )
    .option('--max-streams <n>', 'live streams at once; more are refused', parsePositiveInt, 64)
    .action(async (opts, cmd: Command) => {
      for (const name of ['rpc', 'manifest', 'keyFile'] as const) {
        if (opts[name] === undefined) {
          const flag = name === 'keyFile' ? '--key-file' : `--${name}`;
          cmd.error(`error: required option '${flag} <${name === 'rpc' ? 'url' : 'file'}>' not specified`);
        }
      }
      if (opts.authWebhook !== undefined && !/^https?:\/\//i.test(String(opts.authWebhook))) {
        cmd.error('error: --auth-webhook must be an http(s) URL');
      }
      const logger = createLogger();
      const signal = shutdownSignal();
      const { conn, privateKey } = await signerFrom(opts);
      const manifest = await readManifest(opts.manifest);
      const node = new BroadcasterNode(
        {
          host: opts.host,
          httpPort: opts.httpPort,
          rtmpPort: opts.rtmpPort,
          profiles: resolveProfiles(opts.profiles),
          ...(opts.orchestrators ? { orchestrators: opts.orchestrators } : {}),
          minStake: parseEther(String(opts.minStake)),
          ...(opts.deposit !== undefined ? { deposit: opts.deposit } : {}),
          ...(opts.reserve !== undefined ? { reserve: opts.reserve } : {}),
          ...(opts.streamKeys !== undefined ? { streamKeysFile: opts.streamKeys } : {}),
          ...(opts.authWebhook !== undefined ? { authWebhook: opts.authWebhook } : {}),
          maxStreams: opts.maxStreams,
          jobs: {
            service: opts.service,
            region: opts.region,
            redundancy: Math.max(1, opts.redundancy),
            ...(opts.maxPrice !== undefined
              ? { selection: { maxPricePerPixel: Number(opts.maxPrice) } }
              : {}),
          },
        },
        { conn, manifest, privateKey, logger, tools: resolveMediaTools() },
      );
      await node.start();
      out(`broadcaster ${node.address}`);
      const keyHint = opts.streamKeys || opts.authWebhook ? '?key=<key>' : '';
      out(
        `  publish: ${node.rtmpUrl}/<stream>${keyHint}   (or PUT ${node.httpUrl}/live/<stream>/<seq>.ts${keyHint ? ' with Authorization: Bearer <key>' : ''})`,
      );
      if (!keyHint) out('  ingest:  loopback publishers only (no --stream-keys or --auth-webhook)');
      out(`  watch:   ${node.httpUrl}/hls/<stream>/index.m3u8`);
      out(`  status:  ${node.httpUrl}/status`);
      if (opts.input) {
        void node.ingestFile('file', opts.input, { realtime: true });
        out(`  file:    ${node.hlsUrl('file')}`);
      }
      await untilAborted(signal);
      await node.stop();
    });

  broadcaster
    .command('keys')
    .description('manage the stream keys a broadcaster accepts (--stream-keys FILE)')
    .command('create')
    .description(
      'make a stream key for stream NAME, store its hash in FILE (created 0600) and print the key once',
    )
    .argument('<name>', 'stream name the key publishes (what appears in /hls/<name>/)')
    // `broadcaster` has --stream-keys too and commander hands the flag to it: read it with the globals.
    .option('--stream-keys <file>', 'the stream-keys file (required)')
    .option('--replace', 'replace an existing key of NAME (the old key stops working)')
    .action(async (name: string, _opts: unknown, cmd: Command) => {
      const opts = cmd.optsWithGlobals() as { streamKeys?: string; replace?: boolean };
      if (!opts.streamKeys) cmd.error("error: required option '--stream-keys <file>' not specified");
      const file = opts.streamKeys as string;
      const { key, replaced } = await createStreamKey(file, name, { replace: opts.replace ?? false });
      out(key);
      process.stderr.write(
        `${replaced ? 'replaced the' : 'new'} key of stream ${name} in ${file}; it is shown only now.\n` +
          `  publish: rtmp://<host>:1935/live/${name}?key=<key>  or  PUT http://<host>:8080/live/${name}/<seq>.ts with Authorization: Bearer <key>\n`,
      );
    });
}

/** A whole number ≥ 1. */
function parsePositiveInt(value: string): number {
  const n = parseNonNegativeInt(value);
  if (n < 1) throw new InvalidArgumentError('expected a whole number of at least 1');
  return n;
}

export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .description(
      'run a whole network on a local devnet (3 orchestrators, remote transcoders, delegators, a broadcaster) ' +
        'and stream a generated test source through it; prints the HLS URL',
    )
    .option(
      '--duration <seconds>',
      'stop after this many seconds of stream, counted from the publish (default: until Ctrl-C)',
      parseNonNegativeInt,
    )
    .option('--http-port <port>', 'HLS port (a free one if taken)', parseNonNegativeInt, 8080)
    .option('--json', 'print only a JSON summary at the end')
    .action(async (opts: { duration?: number; httpPort: number; json?: boolean }) => {
      const logger = createLogger({ level: process.env.STREAMFLOW_LOG_LEVEL ?? 'warn' });
      const signal = shutdownSignal();
      const summary = await runDemo(
        {
          ...(opts.duration !== undefined ? { durationSec: opts.duration } : {}),
          httpPort: opts.httpPort,
          signal,
          ...(opts.json ? {} : { onProgress: (line: string) => out(line) }),
        },
        { logger },
      );
      if (opts.json) out(JSON.stringify(summary, null, 2));
      else {
        out(
          `done: ${summary.segments.transcoded}/${summary.segments.ingested} segments transcoded into ` +
            `${summary.renditions} renditions; ${summary.tickets.sent} tickets sent, ${summary.tickets.winning} won, ` +
            `${summary.tickets.redeemed} redeemed on chain (${summary.wei.redeemed} wei)`,
        );
        for (const o of summary.orchestrators) {
          out(
            `  ${o.name.padEnd(10)} ${o.segments} segments, ${o.ticketsRedeemed} ticket${o.ticketsRedeemed === 1 ? '' : 's'} redeemed, ${o.weiEarned} wei`,
          );
        }
      }
    });
}
