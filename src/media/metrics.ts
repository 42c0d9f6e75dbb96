import { Counter, Histogram, type Registry } from 'prom-client';

/** Transcoder metrics; optional in every dep list, so a test or a CLI run passes none. */
export interface MediaMetrics {
  /** `streamflow_media_transcode_seconds{outcome}`: wall time of one segment, all renditions. */
  transcodeSeconds: Pick<Histogram<'outcome'>, 'observe'>;
  /** `streamflow_media_transcoded_pixels_total`: Σ width × height over every rendition frame produced. */
  transcodedPixels: Pick<Counter, 'inc'>;
  /** `streamflow_media_rejected_segments_total{reason}`: segments refused before or during transcoding. */
  rejectedSegments: Pick<Counter<'reason'>, 'inc'>;
}

/** Registers the media metrics on `registry`. */
export function createMediaMetrics(registry: Registry): MediaMetrics {
  return {
    transcodeSeconds: new Histogram({
      name: 'streamflow_media_transcode_seconds',
      help: 'Wall time to transcode one segment into every rendition',
      labelNames: ['outcome'] as const,
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32],
      registers: [registry],
    }),
    transcodedPixels: new Counter({
      name: 'streamflow_media_transcoded_pixels_total',
      help: 'Pixels encoded (sum of width x height over rendition frames)',
      registers: [registry],
    }),
    rejectedSegments: new Counter({
      name: 'streamflow_media_rejected_segments_total',
      help: 'Segments refused as SegmentFormatDidntMatchJobInputParams, by reason',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
  };
}
