package directory

import "context"

type actorKey struct{}

// WithActor answers a context that names who acts: every change written
// under it is recorded in the change log with that name. Callers use
// "api:<key name>" for API keys, "cli:<OS user>" for the command line and
// "oa:<source>" for OA sync.
func WithActor(ctx context.Context, actor string) context.Context {
	return context.WithValue(ctx, actorKey{}, actor)
}

// ActorFrom answers the actor that WithActor put in ctx, or "system".
func ActorFrom(ctx context.Context) string {
	if ctx != nil {
		if a, ok := ctx.Value(actorKey{}).(string); ok && a != "" {
			return a
		}
	}
	return "system"
}
