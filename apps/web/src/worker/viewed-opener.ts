import type { DecodingEngine, DecodingSession, EvaluateOptions, SessionOpener } from '@deft/decoder';
import { ViewTree } from './view-tree.js';

/** The session a search opened and the view that follows it. */
export interface ViewedSession {
  readonly session: DecodingSession;
  readonly view: ViewTree;
}

/**
 * Opens sessions on `engine` for a strategy, each followed by a {@link ViewTree}: the view hears the tree's
 * changes and, through the session's `evaluate` (wrapped here, the only hook a pass has), every pass's
 * log-probabilities.
 */
export function viewedOpener(engine: DecodingEngine, onOpen: (opened: ViewedSession) => void): SessionOpener {
  return {
    openSession(prompt) {
      const session = engine.openSession(prompt);
      const view = new ViewTree(session.tree);
      const evaluate = session.evaluate.bind(session);
      session.evaluate = async (options?: EvaluateOptions) => {
        const evaluation = await evaluate(options);
        view.observe(evaluation);
        return evaluation;
      };
      onOpen({ session, view });
      return session;
    },
  };
}
