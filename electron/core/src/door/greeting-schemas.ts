import { z } from 'zod';
import { DOOR_VERSION, type ClientGreeting, type CoreGreeting, type GreetingCheck } from './greeting.js';

/** The core's greeting (the hangar command checks it by hand: isCoreGreeting). */
export const CoreGreetingSchema = z.object({
  hangar: z.literal('core'),
  door: z.literal(DOOR_VERSION),
  pid: z.number().int(),
  protocol: z.string().max(128).optional(),
}) satisfies z.ZodType<CoreGreeting>;

export const ClientGreetingSchema = z.object({
  hangar: z.literal('client'),
  door: z.literal(DOOR_VERSION),
}) satisfies z.ZodType<ClientGreeting>;

/** The core's check of what a connecting client says first. */
export const isClientGreeting: GreetingCheck<ClientGreeting> = (value) => {
  const checked = ClientGreetingSchema.safeParse(value);
  return checked.success ? checked.data : undefined;
};
