import { afterAll, beforeAll } from 'vitest';
import pg from 'pg';
import { postgresStore } from '../../src/stores/postgres.js';
import { POSTGRES_URL, serviceAvailable } from '../helpers/services.js';
import { storeContract } from './store-contract.js';

let available = false;
const prefixes: string[] = [];
const run = `t${process.pid}_${Date.now().toString(36)}`;

beforeAll(async () => {
  available = await serviceAvailable('PostgreSQL', POSTGRES_URL);
});

afterAll(async () => {
  if (!available) return;
  const client = new pg.Client(POSTGRES_URL);
  await client.connect();
  for (const prefix of prefixes) await client.query(`DROP TABLE IF EXISTS ${prefix}messages`);
  await client.end();
});

storeContract(
  'postgres',
  async () => {
    const tablePrefix = `${run}_${prefixes.length}_`;
    prefixes.push(tablePrefix);
    return postgresStore({ url: POSTGRES_URL, tablePrefix });
  },
  () => !available,
);
