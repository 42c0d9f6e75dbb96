import { Counter, Gauge, type Registry } from 'prom-client';

/** Transcoder pool metrics; optional in {@link TranscoderPoolDeps}. */
export interface PoolMetrics {
  /** `streamflow_pool_dispatches_total{kind,outcome}`: one per segment sent to a member; outcome ok | failed | aborted. */
  dispatches: Pick<Counter<'kind' | 'outcome'>, 'inc'>;
  /** `streamflow_pool_busy_total`: segments refused with `OrchestratorBusy`. */
  busy: Pick<Counter, 'inc'>;
  /** `streamflow_pool_members{kind}`: members now. */
  members: Pick<Gauge<'kind'>, 'set'>;
}

/** Registers the pool metrics on `registry`. */
export function createPoolMetrics(registry: Registry): PoolMetrics {
  return {
    dispatches: new Counter({
      name: 'streamflow_pool_dispatches_total',
      help: 'Segments dispatched to a pool member, by member kind and outcome',
      labelNames: ['kind', 'outcome'] as const,
      registers: [registry],
    }),
    busy: new Counter({
      name: 'streamflow_pool_busy_total',
      help: 'Segments refused with OrchestratorBusy because every member was full',
      registers: [registry],
    }),
    members: new Gauge({
      name: 'streamflow_pool_members',
      help: 'Transcoders in the pool, by kind',
      labelNames: ['kind'] as const,
      registers: [registry],
    }),
  };
}
