// Writing a file that holds secrets (key logs, private keys) so that nobody but its
// owner ever reads it, and so that a path prepared by someone else cannot redirect
// it: the bytes go to a new file made with O_CREAT | O_EXCL | O_NOFOLLOW and mode
// 0600 in the target's directory, which is then renamed over the target. A rename
// replaces a symbolic link itself, never the file it points to, and the target is
// never opened, so no other file's contents or mode can change.

import { randomBytes } from "node:crypto";
import { closeSync, constants, fsyncSync, lstatSync, openSync, renameSync, unlinkSync, writeSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { UsageError } from "./errors.ts";

export interface SecretFileOptions {
  /** Replace an existing regular file (a symbolic link or a directory is refused still). */
  replace?: boolean;
  /** What the file is, for messages: "key log", "private key". */
  what?: string;
}

/** Write `text` to `path` with mode 0600, never through a symbolic link. */
export function writeSecretFile(path: string, text: string, options: SecretFileOptions = {}): void {
  const what = options.what ?? "file";
  const existing = lstatOrUndefined(path);
  if (existing?.isSymbolicLink()) {
    throw new UsageError(`${path} is a symbolic link: a ${what} is never written through one`, {
      hint: "Remove the link or name the real file.",
    });
  }
  if (existing?.isDirectory()) throw new UsageError(`cannot write the ${what} ${path}: it is a directory`);
  if (existing && !options.replace) {
    throw new UsageError(`${path} already exists`, { hint: "Use --force to replace it, or name another file." });
  }
  const dir = dirname(path);
  const temporary = join(dir, `.${basename(path)}.${randomBytes(6).toString("hex")}.tmp`);
  let fd: number;
  try {
    fd = openSync(temporary, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why =
      code === "ENOENT"
        ? `the directory ${dir} does not exist`
        : code === "EACCES"
          ? `no permission to write in ${dir}`
          : code === "ENOTDIR"
            ? `${dir} is not a directory`
            : String(code ?? (e as Error).message);
    throw new UsageError(`cannot write the ${what} ${path}: ${why}`);
  }
  try {
    try {
      writeSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temporary, path);
  } catch (e) {
    try {
      unlinkSync(temporary);
    } catch {
      // already renamed or gone
    }
    throw new UsageError(
      `cannot write the ${what} ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
    );
  }
}

function lstatOrUndefined(path: string): ReturnType<typeof lstatSync> | undefined {
  try {
    return lstatSync(path);
  } catch {
    return undefined;
  }
}
