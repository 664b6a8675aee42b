// Azure Web PubSub: it holds the live stream's WebSockets, which a function app cannot
// (shared/stream/, docs/deploy.md "The live stream in Azure"). The app publishes with the
// access key's connection string, written here to the vault, and checks each event the hub
// posts to it on `ce-signature`, an HMAC made with the same key: so the service keeps its
// access keys (local auth on). Entra ID stays on too, for the identity's role (roles.bicep).
// The hub and its event handler are app/webpubsub-hub.bicep: they need the app's host name.
param name string
param location string
param tags object
@description('Free_F1 (no charge; 20 connections, 20,000 messages a day, no SLA), Standard_S1 or Premium_P1 (billed per unit per day).')
param sku string
@description('Units (1,000 connections each); the Free tier has exactly one.')
param units int
@description('The vault the connection string goes to, as the secret of the setting it feeds.')
param keyVaultName string

resource service 'Microsoft.SignalRService/webPubSub@2024-03-01' = {
  name: name
  location: location
  tags: tags
  sku: {
    name: sku
    capacity: sku == 'Free_F1' ? 1 : units
  }
  properties: {
    // The connection string and `ce-signature` are the access key's.
    disableLocalAuth: false
    disableAadAuth: false
    // Clients connect from anywhere, with a token the app's negotiate minted.
    publicNetworkAccess: 'Enabled'
    tls: {
      clientCertEnabled: false
    }
  }
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

// QCOS_WEBPUBSUB_CONNECTION_STRING -> qcos-webpubsub-connection-string (keyvault.bicep's rule).
// Written on every provision, so after regenerating the primary key `azd provision` stores the
// new one (docs/deploy.md).
resource connectionString 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'qcos-webpubsub-connection-string'
  properties: {
    value: service.listKeys().primaryConnectionString
    contentType: 'text/plain'
  }
}

output name string = service.name
output hostName string = service.properties.hostName
