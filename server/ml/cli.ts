// The data team's CLI: npm run ml -- <train|evaluate|score> [--seed N] [--json]. Uses DATABASE_URL, else the
// embedded PostgreSQL under MARQUEE_DATA_DIR (the running server's when it is up). README "Recommendations and churn
// prediction (server/ml)".
import { parseArgs } from 'node:util';
import { configOrExit } from '../config.ts';
import { createDb, type Db } from '../db/index.ts';
import { openDatabase } from '../db/connect.ts';
import { migrate } from '../db/migrate.ts';
import { trainChurnModel, scoreSubscribers } from './churn.ts';
import { evaluateRecommendations } from './recommend.ts';
import { trainAll, DEFAULT_SEED } from './ml-thread.ts';

const USAGE = `usage: npm run ml -- <command> [--seed N] [--json]

  train              train a churn model (stored in churn_models with its evaluation) and refresh the recommendations
  evaluate [--json]  evaluate both models on their time-based splits (recommendation figures stored for their report); --json prints one JSON object
  score              score every current subscriber with the latest churn model (churn_scores)

  --seed N           an integer 0-2147483647 (default 42): the same seed and data give the same results`;

export class UsageError extends Error {}

export interface MlArgs { command: 'train' | 'evaluate' | 'score'; seed: number; json: boolean }

export function parseMlArgs(argv: string[]): MlArgs {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, options: { seed: { type: 'string' }, json: { type: 'boolean' } } });
  } catch (e: any) { throw new UsageError(e.message); }
  const { values, positionals } = parsed;
  const command = positionals[0];
  if (command !== 'train' && command !== 'evaluate' && command !== 'score') {
    throw new UsageError(command ? `unknown command "${command}"` : 'no command given');
  }
  if (positionals.length > 1) throw new UsageError(`unexpected argument "${positionals[1]}"`);
  const seed = values.seed === undefined ? DEFAULT_SEED : Number(values.seed);
  if (!/^\d+$/.test(values.seed ?? String(DEFAULT_SEED)) || !Number.isSafeInteger(seed) || seed > 2_147_483_647) {
    throw new UsageError(`--seed must be an integer 0-2147483647, got "${values.seed}"`);
  }
  if (values.json && command !== 'evaluate') throw new UsageError('--json goes with evaluate');
  return { command, seed, json: !!values.json };
}

export async function runMl(db: Db, args: MlArgs, out: (l: string) => void, log: (l: string) => void) {
  switch (args.command) {
    case 'train':
      await trainAll(db, args.seed, out);
      return;
    case 'score': {
      const s = await scoreSubscribers(db);
      if (!s) throw new UsageError('no churn model yet: run "npm run ml -- train" first');
      out(`churn scores: ${s.scored} subscribers scored with model ${s.modelId} in ${s.ms} ms`);
      return;
    }
    case 'evaluate': {
      const churn = await trainChurnModel(db, { seed: args.seed });
      const m = churn.metrics;
      if (!args.json) {
        out(`churn (test cutoff ${churn.testCutoff.toISOString().slice(0, 10)}, ${m.test_rows} subscribers, ${m.test_positives} churned):`);
        out(`  model:     AUC ${m.auc}  PR-AUC ${m.pr_auc}`);
        out(`  heuristic: AUC ${m.baseline.auc}  PR-AUC ${m.baseline.pr_auc}  (days since the last viewing)`);
        out(`  calibration (model, predicted→observed by tenth): ${churn.calibration.filter((b) => b.scorer === 'model').map((b) => `${b.predicted.toFixed(3)}→${b.observed.toFixed(3)}`).join('  ')}`);
      }
      const recommendations = await evaluateRecommendations(db, { seed: args.seed });
      if (args.json) {
        out(JSON.stringify({ recommendations, churn: { auc: m.auc, pr_auc: m.pr_auc, baseline: m.baseline } }));
        return;
      }
      const r = recommendations;
      out(`recommendations: hit-rate@10 ${r.hit_rate_at_10}  NDCG@10 ${r.ndcg_at_10}  coverage ${r.coverage}`);
      out(`  most popular: ${JSON.stringify(r.baselines.most_popular)}  random: ${JSON.stringify(r.baselines.random)}`);
      return;
    }
  }
}

async function main() {
  const argv = process.argv.slice(2);
  if (!argv.length || argv[0] === '--help' || argv[0] === 'help') { console.log(USAGE); return 0; }
  let args: MlArgs;
  try { args = parseMlArgs(argv); } catch (e: any) { console.error(`ml: ${e.message}\n\n${USAGE}`); return 2; }
  const target = await openDatabase(configOrExit(process.env, 'ml'), () => {}, { shareRunning: true });
  const db = createDb(target.url, { max: 6, applicationName: 'marquee-ml-cli' });
  try {
    await migrate(db);
    // progress goes to stderr so that `evaluate --json` prints nothing but the JSON on stdout
    await runMl(db, args, (l) => console.log(l), (l) => console.error(l));
    return 0;
  } catch (e: any) {
    if (e instanceof UsageError) { console.error(`ml: ${e.message}`); return 2; }
    throw e;
  } finally {
    await db.close();
    await target.stop();
  }
}

if (process.argv[1]?.endsWith('ml/cli.ts')) {
  main().then((code) => process.exit(code), (e) => { console.error(`ml: ${e.stack ?? e.message}`); process.exit(1); });
}
