// The deployment's roles (keys.md section 1, and groups.md 1's group master and member). A module of constants with no
// dependencies, so that command-line definitions can name the roles without loading
// the agent (its X.509 and HPKE libraries take about 0.2 s to load). Public, like index.ts.

export const ROLES = [
  "writer-server",
  "writer-client",
  "reader-server",
  "reader-client",
  "analyzer",
  "group-master",
  "group-member",
] as const;
export type Role = (typeof ROLES)[number];

/** The roles an agent process can run (an analyzer only fetches key logs). */
export const AGENT_ROLES = [
  "writer-server",
  "writer-client",
  "reader-server",
  "reader-client",
  "group-master",
  "group-member",
] as const;
export type AgentRole = (typeof AGENT_ROLES)[number];
