#!/usr/bin/env node
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const entry = new URL('../dist/src/cli/main.js', import.meta.url);
if (!existsSync(fileURLToPath(entry))) {
  process.stderr.write(
    'streamflow is not built yet: run `npm run build` (npm start and npm test do it for you)\n',
  );
  process.exit(1);
}
const { main } = await import(entry.href);
await main(process.argv);
