// The roles: the bottom of the access layer, with no imports, so the session type (types.ts), the route table
// (access.ts), the report engine and the dashboard catalog can all name them without importing each other.
export type Role = 'admin' | 'analyst' | 'manager' | 'subscriber';
export const ROLES: Role[] = ['admin', 'analyst', 'manager', 'subscriber'];
export const STAFF: Role[] = ['admin', 'analyst', 'manager'];
