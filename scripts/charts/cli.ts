// npm run charts: draw the bench's and the lab's charts again from their raw
// results, without running anything (to change a chart's look, or after
// editing the JSON by hand).
//
//   npm run charts                               # docs/charts/*-results.json -> docs/charts/*.svg
//   npm run charts -- --bench FILE --lab FILE --out DIR
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BENCH_RESULTS, benchCharts, type BenchResults } from './bench';
import { LAB_RESULTS, labCharts, type LabResults } from './lab';
import { DOCS_CHARTS, writeCharts } from './svg';

const USAGE = `Usage: npm run charts -- [--bench FILE] [--lab FILE] [--out DIR]

  --bench FILE  the bench's raw results (default docs/charts/${BENCH_RESULTS})
  --lab FILE    the lab's raw results (default docs/charts/${LAB_RESULTS})
  --out DIR     where the SVG files go (default docs/charts)`;

function main(argv: string[]): void {
  let bench = path.join(DOCS_CHARTS, BENCH_RESULTS);
  let lab = path.join(DOCS_CHARTS, LAB_RESULTS);
  let out = DOCS_CHARTS;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = argv[i + 1];
    if (arg === '-h' || arg === '--help') {
      process.stdout.write(USAGE + '\n');
      return;
    }
    if (!['--bench', '--lab', '--out'].includes(arg) || value === undefined) {
      process.stderr.write(`charts: ${value === undefined && arg.startsWith('--') ? `${arg} needs a value` : `unknown argument ${arg}`}\n${USAGE}\n`);
      process.exit(2);
    }
    i++;
    if (arg === '--bench') bench = path.resolve(value);
    else if (arg === '--lab') lab = path.resolve(value);
    else out = path.resolve(value);
  }
  let written = 0;
  for (const [file, draw] of [
    [bench, (json: unknown) => benchCharts(json as BenchResults)],
    [lab, (json: unknown) => labCharts(json as LabResults)],
  ] as const) {
    if (!fs.existsSync(file)) {
      process.stdout.write(`${path.relative(process.cwd(), file)}: not found, skipped\n`);
      continue;
    }
    const files = writeCharts(out, draw(JSON.parse(fs.readFileSync(file, 'utf8'))));
    for (const f of files) process.stdout.write(`wrote ${path.relative(process.cwd(), f)}\n`);
    written += files.length;
  }
  if (written === 0) {
    process.stderr.write('charts: no results to draw from\n');
    process.exit(1);
  }
}

main(process.argv.slice(2));
