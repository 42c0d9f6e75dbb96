import { Counter, Histogram, type Registry } from 'prom-client';

/** Orchestrator job metrics; optional in the service deps. */
export interface OrchestratorMetrics {
  /** `streamflow_orchestrator_segments_total{outcome}`: Transcode calls by outcome (ok or the error code). */
  segments: Pick<Counter<'outcome'>, 'inc'>;
  /** `streamflow_orchestrator_fees_wei_total`: fees debited from session credit, wei. */
  fees: Pick<Counter, 'inc'>;
  /** `streamflow_orchestrator_transcode_seconds`: Transcode calls that succeeded, request to reply. */
  latency: Pick<Histogram, 'observe'>;
  /** `streamflow_orchestrator_info_requests_total{outcome}`. */
  infoRequests: Pick<Counter<'outcome'>, 'inc'>;
}

export function createOrchestratorMetrics(registry: Registry): OrchestratorMetrics {
  return {
    segments: new Counter({
      name: 'streamflow_orchestrator_segments_total',
      help: 'Transcode requests by outcome',
      labelNames: ['outcome'] as const,
      registers: [registry],
    }),
    fees: new Counter({
      name: 'streamflow_orchestrator_fees_wei_total',
      help: 'Fees debited from broadcaster session credit, wei',
      registers: [registry],
    }),
    latency: new Histogram({
      name: 'streamflow_orchestrator_transcode_seconds',
      help: 'Successful Transcode calls, request to reply',
      buckets: [0.1, 0.25, 0.5, 1, 2, 4, 8, 16],
      registers: [registry],
    }),
    infoRequests: new Counter({
      name: 'streamflow_orchestrator_info_requests_total',
      help: 'GetOrchestratorInfo requests by outcome',
      labelNames: ['outcome'] as const,
      registers: [registry],
    }),
  };
}
