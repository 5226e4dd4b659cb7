export type { RecordedCall, RecordingBackend } from './recording-backend.js';
export { createRecordingBackend } from './recording-backend.js';
