/** The exit statuses of mmssl's commands, for scripts and schedulers to tell outcomes apart. */
export const EXIT = {
  /** Finished. */
  ok: 0,
  /** A mistake in the command line or its inputs, or a failure: the message says which. */
  error: 1,
  /** Stopped by Ctrl-C after a checkpoint (128 + SIGINT, as shells report a program that SIGINT ended). */
  interrupted: 130,
} as const;
