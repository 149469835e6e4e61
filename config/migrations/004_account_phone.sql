-- The SIP endpoint a supervisor's console rings for listen / whisper / barge
-- (ChanSpy is originated to it). Agents use their own extension.
ALTER TABLE account ADD COLUMN phone text;
