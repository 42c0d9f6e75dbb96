// m3u8-parser ships no types; this covers what the tests read.
declare module 'm3u8-parser' {
  export interface ParsedSegment {
    uri: string;
    duration: number;
    timeline: number;
    discontinuity?: boolean;
  }
  export interface ParsedPlaylist {
    uri: string;
    attributes: {
      BANDWIDTH?: number;
      'AVERAGE-BANDWIDTH'?: number;
      RESOLUTION?: { width: number; height: number };
      CODECS?: string;
      'FRAME-RATE'?: number;
    };
  }
  export interface Manifest {
    targetDuration?: number;
    mediaSequence?: number;
    discontinuitySequence?: number;
    endList?: boolean;
    playlistType?: string;
    segments: ParsedSegment[];
    playlists?: ParsedPlaylist[];
  }
  export class Parser {
    push(chunk: string): void;
    end(): void;
    manifest: Manifest;
  }
}
